//! The `backtest` task app's kernel: long/flat daily strategies over OHLC bars for a slice of a
//! parameter grid, with statistics per walk-forward block so that the requester can judge the
//! grid out of sample.
//!
//! Strategies ([`Strategy`]): a moving-average crossover (long while the fast simple average of
//! closes is above the slow one), RSI mean reversion (Wilder's RSI; buy below `lower`, sell above
//! `upper`), and a channel breakout (buy when the close beats the highest high of the previous
//! `entry` days, sell when it breaks the lowest low of the previous `exit` days), plus buy and
//! hold as the benchmark. A signal is computed from day `t`'s close and the days before it only.
//!
//! Fills ([`Fill`]): by default at the next day's open, so a position decided at `t`'s close
//! earns nothing of the night between `t`'s close and `t + 1`'s open; `same-close` fills at the
//! close the signal was computed from, which is optimistic and is there to measure by how much.
//! Every change of position pays `cost_bps + slippage_bps` of the equity traded.
//!
//! The return days are split into `folds + 1` consecutive blocks; each row reports, per block,
//! the day count, the sums of daily returns and of their squares, the growth of equity and the
//! trades, so that any union of blocks has its Sharpe ratio (annualised with 252 days) and its
//! standard error ([`Stats::sharpe_se`], Lo 2002: `sqrt((1 + SR²/2) / n)` for daily returns).
//! Block 0 is only ever in sample; the requester ranks on blocks `1..=folds` and runs the
//! walk-forward selection (choose on blocks before `k`, trade block `k`).
//!
//! Floats are fine here: the sandbox canonicalises NaNs, and IEEE arithmetic without
//! transcendental functions (only `sqrt`, which IEEE rounds exactly) is bit-identical everywhere.
//! It must never read the clock or OS randomness.

use std::collections::VecDeque;
use std::fmt::Write as _;

/// Bounds on what one unit accepts.
pub const MAX_BARS: usize = 100_000;
pub const MAX_WINDOW: u32 = 5_000;
pub const MAX_SETS: usize = 100_000;
pub const MAX_FOLDS: u32 = 20;
/// Fewest return days in a walk-forward block.
pub const MIN_BLOCK_DAYS: usize = 20;
pub const TRADING_DAYS: f64 = 252.0;
/// First line of a unit's `results.csv`.
pub const FORMAT: &str = "# exo-backtest 1";

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

/// One parameter set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Strategy {
    Hold,
    Sma { fast: u32, slow: u32 },
    Rsi { period: u32, lower: u32, upper: u32 },
    Breakout { entry: u32, exit: u32 },
}

impl Strategy {
    pub fn name(&self) -> &'static str {
        match self {
            Strategy::Hold => "hold",
            Strategy::Sma { .. } => "sma",
            Strategy::Rsi { .. } => "rsi",
            Strategy::Breakout { .. } => "breakout",
        }
    }

    /// The parameters as three numbers (unused ones 0), the CSV form.
    pub fn params(&self) -> [u32; 3] {
        match *self {
            Strategy::Hold => [0, 0, 0],
            Strategy::Sma { fast, slow } => [fast, slow, 0],
            Strategy::Rsi {
                period,
                lower,
                upper,
            } => [period, lower, upper],
            Strategy::Breakout { entry, exit } => [entry, exit, 0],
        }
    }

    pub fn from_parts(name: &str, p: [u32; 3]) -> Result<Strategy, String> {
        let s = match name {
            "hold" => Strategy::Hold,
            "sma" => Strategy::Sma {
                fast: p[0],
                slow: p[1],
            },
            "rsi" => Strategy::Rsi {
                period: p[0],
                lower: p[1],
                upper: p[2],
            },
            "breakout" => Strategy::Breakout {
                entry: p[0],
                exit: p[1],
            },
            o => return Err(format!("unknown strategy {o:?}")),
        };
        Ok(s)
    }

    /// A short label, e.g. `sma 10/50`.
    pub fn label(&self) -> String {
        match *self {
            Strategy::Hold => "buy and hold".into(),
            Strategy::Sma { fast, slow } => format!("sma {fast}/{slow}"),
            Strategy::Rsi {
                period,
                lower,
                upper,
            } => format!("rsi {period} {lower}/{upper}"),
            Strategy::Breakout { entry, exit } => format!("breakout {entry}/{exit}"),
        }
    }
}

/// An inclusive range, `lo..=hi` by `step`.
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

    fn parse(text: &str, max: u32) -> Result<Range, String> {
        let bad = || {
            format!("range {text:?}: expected lo:hi:step with 1 <= lo <= hi <= {max}, step >= 1")
        };
        let mut it = text.split(':');
        let mut next =
            || -> Result<u32, String> { it.next().ok_or_else(bad)?.parse().map_err(|_| bad()) };
        let r = Range {
            lo: next()?,
            hi: next()?,
            step: next()?,
        };
        if it.next().is_some() || r.lo == 0 || r.lo > r.hi || r.hi > max || r.step == 0 {
            return Err(bad());
        }
        Ok(r)
    }
}

impl std::fmt::Display for Range {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.lo, self.hi, self.step)
    }
}

/// The parameter grid: for each strategy, ranges of its parameters (or none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Grid {
    /// fast, slow.
    pub sma: Option<[Range; 2]>,
    /// period, lower, upper (RSI levels 1 to 99).
    pub rsi: Option<[Range; 3]>,
    /// entry, exit.
    pub breakout: Option<[Range; 2]>,
}

impl Grid {
    /// The parameter sets, in a fixed order: sma (fast < slow), rsi (lower < upper), breakout.
    pub fn sets(&self) -> Vec<Strategy> {
        let mut out = Vec::new();
        if let Some([f, s]) = self.sma {
            for fast in f.values() {
                for slow in s.values().filter(|&s| fast < s) {
                    out.push(Strategy::Sma { fast, slow });
                }
            }
        }
        if let Some([p, l, u]) = self.rsi {
            for period in p.values() {
                for lower in l.values() {
                    for upper in u.values().filter(|&u| lower < u) {
                        out.push(Strategy::Rsi {
                            period,
                            lower,
                            upper,
                        });
                    }
                }
            }
        }
        if let Some([e, x]) = self.breakout {
            for entry in e.values() {
                for exit in x.values() {
                    out.push(Strategy::Breakout { entry, exit });
                }
            }
        }
        out
    }

    /// Counts the sets without building them, to refuse a huge grid cheaply.
    fn count(&self) -> u64 {
        let n = |r: Range| u64::from((r.hi - r.lo) / r.step + 1);
        let mut total = 0u64;
        if let Some([f, s]) = self.sma {
            total += n(f) * n(s);
        }
        if let Some([p, l, u]) = self.rsi {
            total += n(p) * n(l) * n(u);
        }
        if let Some([e, x]) = self.breakout {
            total += n(e) * n(x);
        }
        total
    }
}

/// When a position decided at a close is filled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fill {
    NextOpen,
    SameClose,
}

/// Everything but the grid that a unit needs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Config {
    pub fill: Fill,
    pub cost_bps: f64,
    pub slippage_bps: f64,
    /// Walk-forward folds: the days are split into `folds + 1` blocks.
    pub folds: u32,
}

impl Config {
    /// Sets `fill`, `cost`, `slip` or `folds` from its text.
    pub fn set(&mut self, key: &str, v: &str) -> Result<(), String> {
        match key {
            "fill" => {
                self.fill = match v {
                    "next-open" => Fill::NextOpen,
                    "same-close" => Fill::SameClose,
                    o => return Err(format!("fill={o:?}: expected next-open or same-close")),
                }
            }
            "cost" => self.cost_bps = bps(key, v)?,
            "slip" => self.slippage_bps = bps(key, v)?,
            "folds" => {
                self.folds = v
                    .parse()
                    .ok()
                    .filter(|f| (1..=MAX_FOLDS).contains(f))
                    .ok_or_else(|| format!("folds={v:?} must be 1 to {MAX_FOLDS}"))?;
            }
            o => return Err(format!("{o}= is not a setting")),
        }
        Ok(())
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            fill: Fill::NextOpen,
            cost_bps: 5.0,
            slippage_bps: 5.0,
            folds: 4,
        }
    }
}

/// A unit's arguments: the grid, the configuration and the slice `sets=lo:hi` (half open) of
/// the grid's sets it runs.
#[derive(Clone, Debug, PartialEq)]
pub struct UnitArgs {
    pub grid: Grid,
    pub config: Config,
    pub sets: (usize, usize),
}

fn bps(name: &str, v: &str) -> Result<f64, String> {
    let x: f64 = v
        .parse()
        .map_err(|_| format!("{name}={v:?} is not a number"))?;
    if !(0.0..=1000.0).contains(&x) {
        return Err(format!("{name}={v} must be 0 to 1000 basis points"));
    }
    Ok(x)
}

impl UnitArgs {
    /// Parses `key=value` tokens: `sma=F/S`, `rsi=P/L/U`, `breakout=E/X` (each range
    /// `lo:hi:step`), `fill=next-open|same-close`, `cost=BPS`, `slip=BPS`, `folds=K` and
    /// `sets=LO:HI`. `sets` may be left out by a planner (`require_sets` false): it is then the
    /// whole grid.
    pub fn parse(tokens: &[String], require_sets: bool) -> Result<UnitArgs, String> {
        let mut grid = Grid::default();
        let mut config = Config::default();
        let mut sets = None;
        let mut seen: Vec<&str> = Vec::new();
        for t in tokens {
            let (k, v) = t
                .split_once('=')
                .ok_or_else(|| format!("expected key=value, got {t:?}"))?;
            if seen.contains(&k) {
                return Err(format!("{k} is given twice"));
            }
            seen.push(k);
            let ranges = |n: usize, max: u32| -> Result<Vec<Range>, String> {
                let parts: Vec<&str> = v.split('/').collect();
                if parts.len() != n {
                    return Err(format!("{k}= takes {n} ranges separated by '/'"));
                }
                parts.iter().map(|p| Range::parse(p, max)).collect()
            };
            match k {
                "sma" => {
                    let r = ranges(2, MAX_WINDOW)?;
                    grid.sma = Some([r[0], r[1]]);
                }
                "rsi" => {
                    let r = ranges(3, 99)?;
                    if r[0].lo < 2 {
                        return Err("rsi period must be at least 2".into());
                    }
                    grid.rsi = Some([r[0], r[1], r[2]]);
                }
                "breakout" => {
                    let r = ranges(2, MAX_WINDOW)?;
                    grid.breakout = Some([r[0], r[1]]);
                }
                "fill" | "cost" | "slip" | "folds" => config.set(k, v)?,
                "sets" => {
                    let (lo, hi) = v
                        .split_once(':')
                        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
                        .ok_or_else(|| format!("sets={v:?}: expected lo:hi"))?;
                    sets = Some((lo, hi));
                }
                o => {
                    return Err(format!(
                        "unknown argument {o}=; expected sma, rsi, breakout, fill, cost, slip, folds, sets"
                    ));
                }
            }
        }
        if grid == Grid::default() {
            return Err("no strategy: give at least one of sma=, rsi=, breakout=".into());
        }
        if grid.count() > MAX_SETS as u64 {
            return Err(format!("the grid has over {MAX_SETS} parameter sets"));
        }
        let total = grid.sets().len();
        let sets = match sets {
            Some(s) => s,
            None if !require_sets => (0, total),
            None => return Err("missing sets=lo:hi".into()),
        };
        if sets.0 >= sets.1 || sets.1 > total {
            return Err(format!(
                "sets={}:{} is not a non-empty slice of the grid's {total} sets",
                sets.0, sets.1
            ));
        }
        Ok(UnitArgs { grid, config, sets })
    }

    /// The tokens [`UnitArgs::parse`] reads back (the grid and configuration, then `sets`).
    pub fn to_line(&self) -> String {
        let mut s = String::new();
        let g = &self.grid;
        if let Some([a, b]) = g.sma {
            let _ = write!(s, "sma={a}/{b} ");
        }
        if let Some([a, b, c]) = g.rsi {
            let _ = write!(s, "rsi={a}/{b}/{c} ");
        }
        if let Some([a, b]) = g.breakout {
            let _ = write!(s, "breakout={a}/{b} ");
        }
        let c = &self.config;
        let _ = write!(
            s,
            "fill={} cost={} slip={} folds={} sets={}:{}",
            fill_name(c.fill),
            c.cost_bps,
            c.slippage_bps,
            c.folds,
            self.sets.0,
            self.sets.1
        );
        s
    }
}

pub fn fill_name(f: Fill) -> &'static str {
    match f {
        Fill::NextOpen => "next-open",
        Fill::SameClose => "same-close",
    }
}

/// The signal (long or flat) at each day's close, from that close and earlier data only.
pub fn signals(bars: &[Bar], strategy: Strategy) -> Vec<bool> {
    let mut out = vec![false; bars.len()];
    match strategy {
        Strategy::Hold => out.iter_mut().for_each(|s| *s = true),
        Strategy::Sma { fast, slow } => {
            // Prefix sums of closes, in order, so each average is two loads and a division;
            // collected, so that the loop has no capacity check.
            let mut sum = 0.0f64;
            let prefix: Vec<f64> = std::iter::once(0.0)
                .chain(bars.iter().map(|b| {
                    sum += b.close;
                    sum
                }))
                .collect();
            sma_signals(&prefix, fast as usize, slow as usize, &mut out);
        }
        Strategy::Rsi {
            period,
            lower,
            upper,
        } => rsi_signals(bars, period as usize, lower, upper, &mut out),
        Strategy::Breakout { entry, exit } => {
            breakout_signals(bars, entry as usize, exit as usize, &mut out)
        }
    }
    out
}

/// Long while the fast simple average of closes is above the slow one; `prefix[t]` is the sum
/// of the first `t` closes.
fn sma_signals(prefix: &[f64], f: usize, s: usize, out: &mut [bool]) {
    let sma = |t: usize, w: usize| (prefix[t + 1] - prefix[t + 1 - w]) / w as f64;
    for (t, sig) in out.iter_mut().enumerate() {
        *sig = t + 1 >= s.max(f) && sma(t, f) > sma(t, s);
    }
}

/// Wilder's RSI over `p` days: long from a close below `lower` until one above `upper`.
fn rsi_signals(bars: &[Bar], p: usize, lower: u32, upper: u32, out: &mut [bool]) {
    let (mut gain, mut loss) = (0.0f64, 0.0f64);
    let mut long = false;
    for t in 1..bars.len().min(out.len()) {
        let change = bars[t].close - bars[t - 1].close;
        // `change` is finite (prices are), so these equal `change.max(0.0)` and
        // `(-change).max(0.0)` up to the sign of a zero, which the sums below erase.
        let g = if change > 0.0 { change } else { 0.0 };
        let l = if change < 0.0 { -change } else { 0.0 };
        if t <= p {
            gain += g / p as f64;
            loss += l / p as f64;
        } else {
            gain = (gain * (p - 1) as f64 + g) / p as f64;
            loss = (loss * (p - 1) as f64 + l) / p as f64;
        }
        if t >= p {
            let rsi = if loss == 0.0 {
                100.0
            } else {
                100.0 - 100.0 / (1.0 + gain / loss)
            };
            if !long && rsi < f64::from(lower) {
                long = true;
            } else if long && rsi > f64::from(upper) {
                long = false;
            }
        }
        out[t] = long;
    }
}

/// Long from a close above the highest high of the previous `e` days until one below the
/// lowest low of the previous `x` days.
fn breakout_signals(bars: &[Bar], e: usize, x: usize, out: &mut [bool]) {
    // Monotone queues of the previous `e` highs and `x` lows.
    let mut highs: VecDeque<usize> = VecDeque::with_capacity(e + 1);
    let mut lows: VecDeque<usize> = VecDeque::with_capacity(x + 1);
    let mut long = false;
    for t in 0..bars.len().min(out.len()) {
        while highs.front().is_some_and(|&i| i + e < t) {
            highs.pop_front();
        }
        while lows.front().is_some_and(|&i| i + x < t) {
            lows.pop_front();
        }
        if t >= e.max(x) {
            let (Some(&hi), Some(&lo)) = (highs.front(), lows.front()) else {
                continue;
            };
            if !long && bars[t].close > bars[hi].high {
                long = true;
            } else if long && bars[t].close < bars[lo].low {
                long = false;
            }
        }
        out[t] = long;
        while highs.back().is_some_and(|&i| bars[i].high <= bars[t].high) {
            highs.pop_back();
        }
        highs.push_back(t);
        while lows.back().is_some_and(|&i| bars[i].low >= bars[t].low) {
            lows.pop_back();
        }
        lows.push_back(t);
    }
}

/// The growth of equity on each return day `t = 1..n` (index `t - 1`) and whether the position
/// changed that day. The position held over day `t` is the signal at `t - 1`'s close, filled at
/// `t`'s open (next-open) or at `t - 1`'s close (same-close).
pub fn daily_growth(bars: &[Bar], signals: &[bool], config: &Config) -> Vec<(f64, bool)> {
    let mut position = Position::new(config);
    // Day `t` needs the signal at `t - 1`, so the last signal is never used.
    let used = &signals[..signals.len().saturating_sub(1)];
    bars.windows(2)
        .zip(used)
        .map(|(pair, &now)| position.step(&pair[0], &pair[1], now))
        .collect()
}

/// A position through the return days, one [`Position::step`] a day.
struct Position {
    held: bool,
    fill: Fill,
    /// Fraction of equity a change of position costs.
    charge: f64,
}

impl Position {
    fn new(config: &Config) -> Self {
        Position {
            held: false,
            fill: config.fill,
            charge: (config.cost_bps + config.slippage_bps) / 10_000.0,
        }
    }

    /// Day `bar` after `prev`, with `now` the signal at `prev`'s close: the growth of equity
    /// and whether the position changed.
    fn step(&mut self, prev: &Bar, bar: &Bar, now: bool) -> (f64, bool) {
        let traded = now != self.held;
        let mut g = match self.fill {
            Fill::NextOpen => {
                let night = if self.held {
                    bar.open / prev.close
                } else {
                    1.0
                };
                let day = if now { bar.close / bar.open } else { 1.0 };
                night * day
            }
            Fill::SameClose => {
                if now {
                    bar.close / prev.close
                } else {
                    1.0
                }
            }
        };
        if traded {
            g *= 1.0 - self.charge;
        }
        self.held = now;
        (g, traded)
    }
}

/// Additive statistics of a run of daily returns.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stats {
    pub days: u32,
    pub sum: f64,
    pub sum_sq: f64,
    /// Product of daily growth factors.
    pub growth: f64,
    pub trades: u32,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            days: 0,
            sum: 0.0,
            sum_sq: 0.0,
            growth: 1.0,
            trades: 0,
        }
    }
}

impl Stats {
    pub fn push(&mut self, growth: f64, traded: bool) {
        let r = growth - 1.0;
        self.days += 1;
        self.sum += r;
        self.sum_sq += r * r;
        self.growth *= growth;
        self.trades += u32::from(traded);
    }

    pub fn join(&self, o: &Stats) -> Stats {
        Stats {
            days: self.days.saturating_add(o.days),
            sum: self.sum + o.sum,
            sum_sq: self.sum_sq + o.sum_sq,
            growth: self.growth * o.growth,
            trades: self.trades.saturating_add(o.trades),
        }
    }

    /// Daily Sharpe ratio (mean over population standard deviation; 0 without variance).
    pub fn daily_sharpe(&self) -> f64 {
        if self.days == 0 {
            return 0.0;
        }
        let n = f64::from(self.days);
        let mean = self.sum / n;
        let var = (self.sum_sq / n - mean * mean).max(0.0);
        if var > 0.0 { mean / var.sqrt() } else { 0.0 }
    }

    /// Annualised Sharpe ratio (252 days, no risk-free rate).
    pub fn sharpe(&self) -> f64 {
        self.daily_sharpe() * TRADING_DAYS.sqrt()
    }

    /// Standard error of [`Stats::sharpe`] for independent returns (Lo 2002):
    /// `sqrt((1 + SR_d² / 2) / n)` for the daily ratio, times `sqrt(252)`.
    pub fn sharpe_se(&self) -> f64 {
        if self.days == 0 {
            return f64::INFINITY;
        }
        let sr = self.daily_sharpe();
        ((1.0 + sr * sr / 2.0) / f64::from(self.days)).sqrt() * TRADING_DAYS.sqrt()
    }

    pub fn total_return(&self) -> f64 {
        self.growth - 1.0
    }
}

/// The return-day ranges (indices into [`daily_growth`]'s output) of the `folds + 1` blocks.
pub fn blocks(days: usize, folds: u32) -> Result<Vec<std::ops::Range<usize>>, String> {
    let k = folds as usize + 1;
    if days / k < MIN_BLOCK_DAYS {
        return Err(format!(
            "{days} return days cannot make {k} blocks of at least {MIN_BLOCK_DAYS} days"
        ));
    }
    Ok((0..k).map(|b| b * days / k..(b + 1) * days / k).collect())
}

/// A parameter set's results: per-block statistics and the largest drawdown out of sample
/// (blocks `1..`).
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub strategy: Strategy,
    pub blocks: Vec<Stats>,
    pub oos_max_drawdown: f64,
}

/// Runs one parameter set over the bars.
pub fn run_set(bars: &[Bar], strategy: Strategy, config: &Config) -> Result<Row, String> {
    let signals = signals(bars, strategy);
    // The return days are those of [`daily_growth`], computed here in the same loop as their
    // statistics: a loop less per day, and no vector of days in between.
    let ranges = blocks(bars.len().saturating_sub(1), config.folds)?;
    let mut position = Position::new(config);
    let mut drawdown = Drawdown::default();
    let mut blocks = Vec::with_capacity(ranges.len());
    // A plain loop rather than a closure: state a closure borrows lives in memory, and in
    // WebAssembly each store of a computed float to memory also pays the sandbox's NaN check.
    for (b, range) in ranges.iter().enumerate() {
        let mut s = Stats::default();
        let days = bars[range.start..=range.end]
            .windows(2)
            .zip(&signals[range.clone()]);
        for (pair, &now) in days {
            let (g, traded) = position.step(&pair[0], &pair[1], now);
            s.push(g, traded);
            if b > 0 {
                drawdown.push(g);
            }
        }
        blocks.push(s);
    }
    Ok(Row {
        strategy,
        blocks,
        oos_max_drawdown: drawdown.max,
    })
}

/// The largest fall of equity from its peak, as a fraction of the peak.
struct Drawdown {
    equity: f64,
    peak: f64,
    max: f64,
}

impl Default for Drawdown {
    fn default() -> Self {
        Drawdown {
            equity: 1.0,
            peak: 1.0,
            max: 0.0,
        }
    }
}

impl Drawdown {
    fn push(&mut self, growth: f64) {
        self.equity *= growth;
        self.peak = larger(self.peak, self.equity);
        self.max = larger(self.max, (self.peak - self.equity) / self.peak);
    }
}

/// `acc.max(x)` for an `acc` that is never NaN (and `x` never a zero of the other sign), as a
/// comparison. `f64::max` is IEEE `maxNum`, which WebAssembly has no instruction for: the
/// compiler calls libm's `fmax` there, a call per day in [`run_set`]'s loop.
fn larger(acc: f64, x: f64) -> f64 {
    if x > acc { x } else { acc }
}

/// Runs the unit's slice of the grid.
pub fn run_unit(bars: &[Bar], args: &UnitArgs) -> Result<Vec<Row>, String> {
    let sets = args.grid.sets();
    let slice = sets
        .get(args.sets.0..args.sets.1)
        .ok_or_else(|| "sets out of range".to_string())?;
    slice
        .iter()
        .map(|&s| run_set(bars, s, &args.config))
        .collect()
}

/// The first line of `results.csv`: the format, the data and the configuration, which every
/// unit of a job must repeat identically.
pub fn header(bars: &[Bar], config: &Config) -> String {
    format!(
        "{FORMAT} bars={} first={} last={} fill={} cost={} slip={} folds={}",
        bars.len(),
        bars.first().map_or(0, |b| b.date),
        bars.last().map_or(0, |b| b.date),
        fill_name(config.fill),
        config.cost_bps,
        config.slippage_bps,
        config.folds
    )
}

/// The configuration a [`header`] names (the data fields are checked by comparing the whole
/// header with the one the requester computes from its own copy of the data).
pub fn config_of_header(h: &str) -> Result<Config, String> {
    let rest = h
        .strip_prefix(FORMAT)
        .ok_or_else(|| format!("the first line is not {FORMAT:?}"))?;
    let mut config = Config::default();
    let mut seen = 0;
    for token in rest.split_whitespace() {
        if let Some((k, v)) = token.split_once('=')
            && ["fill", "cost", "slip", "folds"].contains(&k)
        {
            config.set(k, v)?;
            seen += 1;
        }
    }
    if seen != 4 {
        return Err("the header does not name fill, cost, slip and folds".into());
    }
    Ok(config)
}

const COLUMNS: &str =
    "strategy,p1,p2,p3,oos_max_drawdown,then per block: days,sum,sum_sq,growth,trades";

/// `results.csv`: the header, a column line, then one line per row. Floats use Rust's
/// shortest round-trip formatting, so the requester reads back the very bits.
pub fn format_results(header: &str, rows: &[Row]) -> String {
    let mut out = String::with_capacity(rows.len() * 200 + 256);
    out.push_str(header);
    out.push('\n');
    out.push_str("# ");
    out.push_str(COLUMNS);
    out.push('\n');
    for r in rows {
        let [a, b, c] = r.strategy.params();
        let _ = write!(
            out,
            "{},{a},{b},{c},{}",
            r.strategy.name(),
            r.oos_max_drawdown
        );
        for s in &r.blocks {
            let _ = write!(
                out,
                ",{},{},{},{},{}",
                s.days, s.sum, s.sum_sq, s.growth, s.trades
            );
        }
        out.push('\n');
    }
    out
}

/// Parses [`format_results`]: the header line and the rows, each with `folds + 1` blocks.
pub fn parse_results(text: &str, folds: u32) -> Result<(String, Vec<Row>), String> {
    let mut lines = text.lines();
    let header = lines
        .next()
        .filter(|h| h.starts_with(FORMAT))
        .ok_or_else(|| format!("the first line is not {FORMAT:?}"))?
        .to_string();
    let mut rows = Vec::new();
    for (i, line) in lines.enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if rows.len() >= MAX_SETS {
            return Err(format!("over {MAX_SETS} rows"));
        }
        let err = || format!("results line {}: malformed", i + 2);
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 5 + 5 * (folds as usize + 1) {
            return Err(err());
        }
        let int = |s: &str| s.parse::<u32>().map_err(|_| err());
        let float = |s: &str| {
            s.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(err)
        };
        let strategy = Strategy::from_parts(f[0], [int(f[1])?, int(f[2])?, int(f[3])?])?;
        let mut blocks = Vec::with_capacity(folds as usize + 1);
        for b in f[5..].chunks(5) {
            blocks.push(Stats {
                days: int(b[0])?,
                sum: float(b[1])?,
                sum_sq: float(b[2])?,
                growth: float(b[3])?,
                trades: int(b[4])?,
            });
        }
        rows.push(Row {
            strategy,
            blocks,
            oos_max_drawdown: float(f[4])?,
        });
    }
    Ok((header, rows))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn bar(date: u32, open: f64, close: f64) -> Bar {
        Bar {
            date,
            open,
            high: open.max(close),
            low: open.min(close),
            close,
        }
    }

    fn tokens(text: &str) -> Vec<String> {
        text.split(' ').map(String::from).collect()
    }

    #[test]
    fn a_next_open_fill_misses_the_overnight_gap_a_same_close_fill_takes() {
        // Day 1 opens 10% above day 0's close and gains another 10% by its close.
        let bars = [
            bar(1, 100.0, 100.0),
            bar(2, 110.0, 121.0),
            bar(3, 121.0, 121.0),
        ];
        let hold = signals(&bars, Strategy::Hold);
        let at = |fill, cost_bps| {
            let config = Config {
                fill,
                cost_bps,
                slippage_bps: 0.0,
                folds: 1,
            };
            daily_growth(&bars, &hold, &config)
                .iter()
                .map(|(g, _)| g)
                .product::<f64>()
        };
        assert!((at(Fill::NextOpen, 0.0) - 1.1).abs() < 1e-12);
        assert!((at(Fill::SameClose, 0.0) - 1.21).abs() < 1e-12);
        // One trade, charged once.
        assert!((at(Fill::NextOpen, 10.0) - 1.1 * 0.999).abs() < 1e-12);
    }

    #[test]
    fn signals_use_no_data_after_their_close() {
        let mut bars: Vec<Bar> = (0..300)
            .map(|i| {
                let c = 100.0 + 10.0 * ((i as f64) * 0.1).sin();
                bar(i, c, c)
            })
            .collect();
        for strategy in [
            Strategy::Sma { fast: 5, slow: 20 },
            Strategy::Rsi {
                period: 14,
                lower: 30,
                upper: 70,
            },
            Strategy::Breakout {
                entry: 20,
                exit: 10,
            },
        ] {
            let before = signals(&bars, strategy);
            assert!(
                before.iter().any(|&s| s) && before.iter().any(|&s| !s),
                "{strategy:?}"
            );
            // Changing the future changes no signal of the past.
            let saved = bars.clone();
            for b in &mut bars[200..] {
                b.close *= 3.0;
                b.high *= 3.0;
            }
            assert_eq!(
                signals(&bars, strategy)[..200],
                before[..200],
                "{strategy:?}"
            );
            bars = saved;
        }
    }

    #[test]
    fn the_sharpe_standard_error_follows_lo_on_a_known_series() {
        // Returns alternate +2% and -1%: daily mean 0.5%, standard deviation 1.5%, SR_d = 1/3.
        let mut s = Stats::default();
        for i in 0..100 {
            s.push(if i % 2 == 0 { 1.02 } else { 0.99 }, false);
        }
        assert!((s.daily_sharpe() - 1.0 / 3.0).abs() < 1e-12);
        let expect = ((1.0 + 1.0 / 18.0) / 100.0f64).sqrt() * 252f64.sqrt();
        assert!((s.sharpe_se() - expect).abs() < 1e-12, "{}", s.sharpe_se());
        assert!((s.sharpe() - 252f64.sqrt() / 3.0).abs() < 1e-12);
        // Blocks join: the halves give the whole.
        let (mut a, mut b) = (Stats::default(), Stats::default());
        for i in 0..100 {
            let g = if i % 2 == 0 { 1.02 } else { 0.99 };
            if i < 50 {
                a.push(g, false)
            } else {
                b.push(g, false)
            }
        }
        assert!((a.join(&b).sharpe() - s.sharpe()).abs() < 1e-12);
    }

    #[test]
    fn unit_arguments_round_trip_and_bad_ones_are_refused() {
        let line = "sma=5:50:5/20:200:10 rsi=2:20:2/10:40:10/50:80:10 breakout=20:250:10/10:100:10 fill=same-close cost=2.5 slip=1 folds=3 sets=10:20";
        let args = UnitArgs::parse(&tokens(line), true).unwrap();
        assert_eq!(args.to_line(), line);
        assert_eq!(args.config.fill, Fill::SameClose);
        assert!(line.len() <= 256);
        for bad in [
            "sets=0:1",
            "sma=5:50:5 sets=0:1",
            "sma=0:50:5/20:200:10 sets=0:1",
            "sma=5:50:5/20:200:10 sets=5:5",
            "sma=5:50:5/20:200:10 sets=0:100000",
            "sma=5:50:5/20:200:10 fill=tomorrow sets=0:1",
            "sma=5:50:5/20:200:10 cost=-1 sets=0:1",
            "sma=5:50:5/20:200:10 folds=0 sets=0:1",
            "sma=5:50:5/20:200:10 colour=red sets=0:1",
            "sma=1:5000:1/1:5000:1 sets=0:1",
        ] {
            assert!(UnitArgs::parse(&tokens(bad), true).is_err(), "{bad}");
        }
    }

    #[test]
    fn results_round_trip_through_their_text() {
        let bars: Vec<Bar> = (0..400)
            .map(|i| {
                let c = 100.0 * (1.0 + 0.001 * i as f64) + 5.0 * ((i as f64) * 0.07).sin();
                bar(20000101 + i, c * 0.999, c)
            })
            .collect();
        let args = UnitArgs::parse(
            &tokens("sma=5:10:5/20:40:20 breakout=10:20:10/5:5:1 folds=3"),
            false,
        )
        .unwrap();
        let rows = run_unit(&bars, &args).unwrap();
        assert_eq!(rows.len(), 6);
        assert_eq!(rows[0].blocks.len(), 4);
        let text = format_results(&header(&bars, &args.config), &rows);
        let (h, back) = parse_results(&text, 3).unwrap();
        assert_eq!(h, header(&bars, &args.config));
        assert_eq!(back, rows);
        assert!(parse_results(&text, 2).is_err());
        assert!(parse_results("sma,1,2\n", 3).is_err());
        // Too little data for the folds is refused, not mis-split.
        assert!(run_set(&bars[..50], Strategy::Hold, &args.config).is_err());
    }
}
