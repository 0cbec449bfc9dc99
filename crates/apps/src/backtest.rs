//! Requester side of `backtest`: the job plan (the grid's parameter sets split over units) and
//! the combination of the units' `results.csv` into `ranking.csv` and `equity.png`.
//!
//! The walk-forward rule: the days are split into `folds + 1` blocks. Block 0 only ever
//! chooses. Fold `k` (1 to `folds`) chooses the set with the best Sharpe ratio over blocks
//! `0..k` and trades it over block `k`; the stitched blocks are the grid search's honest,
//! out-of-sample record. Every parameter set is ranked on blocks `1..=folds` only, next to its
//! Sharpe ratio over block 0, so that the gap between the two is in plain view.

use crate::CombineError;
pub use exo_app_backtest::{Bar, Config, Row, Stats, Strategy, UnitArgs, fill_name};
use exo_app_backtest::{blocks, daily_growth, signals};
use std::collections::BTreeSet;
use std::fmt::Write as _;

/// The grid a plan uses when it names no strategy: about 600 sets over the three strategies.
pub const DEFAULT_GRID: &[&str] = &[
    "sma=5:50:5/20:200:10",
    "rsi=2:20:2/10:40:10/50:80:10",
    "breakout=20:250:10/10:100:10",
];
/// How many of the best sets `equity.png` draws.
pub const PLOTTED_SETS: usize = 3;

fn plan_error(e: impl std::fmt::Display) -> CombineError {
    CombineError::BadPlan(e.to_string())
}

/// Splits a backtest job into `units` argument lines: contiguous slices of the grid's sets.
///
/// `params` are the unit's `key=value` tokens without `sets` (see [`UnitArgs::parse`]); without
/// any of `sma=`, `rsi=` or `breakout=`, the [`DEFAULT_GRID`] is used.
pub fn plan(params: &[String], units: u32) -> Result<Vec<String>, CombineError> {
    if params.iter().any(|p| p.starts_with("sets=")) {
        return Err(plan_error(
            "sets= is chosen by the plan, one slice per unit",
        ));
    }
    let mut tokens = params.to_vec();
    let names_strategy = |t: &String| {
        ["sma=", "rsi=", "breakout="]
            .iter()
            .any(|k| t.starts_with(k))
    };
    if !tokens.iter().any(names_strategy) {
        tokens.extend(DEFAULT_GRID.iter().map(|s| s.to_string()));
    }
    let whole = UnitArgs::parse(&tokens, false).map_err(plan_error)?;
    let total = whole.sets.1;
    if units == 0 || units as usize > total {
        return Err(plan_error(format!(
            "{units} units for {total} parameter sets: give 1 to {total} units"
        )));
    }
    let units = units as usize;
    Ok((0..units)
        .map(|u| {
            let slice = (u * total / units, (u + 1) * total / units);
            UnitArgs {
                sets: slice,
                ..whole.clone()
            }
            .to_line()
        })
        .collect())
}

/// Whether a unit's output looks like a backtest `results.csv`.
pub fn recognises(results_csv: &[u8]) -> bool {
    results_csv.starts_with(exo_app_backtest::FORMAT.as_bytes())
}

/// One parameter set, judged.
#[derive(Clone, Debug, PartialEq)]
pub struct Ranked {
    pub strategy: Strategy,
    /// Blocks `1..=folds`.
    pub oos: Stats,
    pub oos_max_drawdown: f64,
    /// Block 0.
    pub in_sample: Stats,
    /// Folds whose walk-forward choice this set was.
    pub chosen_folds: u32,
}

/// An equity curve over the out-of-sample days, starting at 1.
#[derive(Clone, Debug, PartialEq)]
pub struct Curve {
    pub label: String,
    pub equity: Vec<f64>,
}

/// A combined backtest job.
#[derive(Clone, Debug, PartialEq)]
pub struct Backtest {
    pub config: Config,
    /// Best first, on out-of-sample blocks only.
    pub ranked: Vec<Ranked>,
    /// Buy and hold over the same blocks, with the same fills and costs.
    pub benchmark: Ranked,
    /// The walk-forward record: each fold's choice over its block.
    pub walk_forward: Stats,
    pub walk_forward_max_drawdown: f64,
    /// The set each fold chose.
    pub choices: Vec<Strategy>,
    /// Dates of the out-of-sample days.
    pub dates: Vec<u32>,
    /// Index (in `dates`) where each fold after the first begins.
    pub fold_starts: Vec<usize>,
    /// Benchmark, walk-forward, then the best sets.
    pub curves: Vec<Curve>,
}

fn join(stats: &[Stats]) -> Stats {
    stats.iter().fold(Stats::default(), |acc, s| acc.join(s))
}

/// Best first: Sharpe ratio, then total return (both descending), then the strategy's order,
/// so that ties have one order everywhere.
fn better(a: &Stats, sa: &Strategy, b: &Stats, sb: &Strategy) -> std::cmp::Ordering {
    b.sharpe()
        .total_cmp(&a.sharpe())
        .then(b.total_return().total_cmp(&a.total_return()))
        .then(sa.cmp(sb))
}

/// Ranks rows on their out-of-sample blocks and runs the walk-forward selection. Rows must all
/// have `folds + 1` blocks.
pub fn rank(rows: &[Row], folds: u32) -> (Vec<Ranked>, Vec<Strategy>, Stats) {
    let k = folds as usize;
    let mut choices = Vec::with_capacity(k);
    let mut record = Vec::with_capacity(k);
    for fold in 1..=k {
        let best = rows
            .iter()
            .map(|r| (join(&r.blocks[..fold]), r))
            .min_by(|(a, ra), (b, rb)| better(a, &ra.strategy, b, &rb.strategy));
        if let Some((_, row)) = best {
            choices.push(row.strategy);
            record.push(row.blocks[fold]);
        }
    }
    let mut ranked: Vec<Ranked> = rows
        .iter()
        .map(|r| Ranked {
            strategy: r.strategy,
            oos: join(&r.blocks[1..]),
            oos_max_drawdown: r.oos_max_drawdown,
            in_sample: r.blocks[0],
            chosen_folds: choices.iter().filter(|c| **c == r.strategy).count() as u32,
        })
        .collect();
    ranked.sort_by(|a, b| better(&a.oos, &a.strategy, &b.oos, &b.strategy));
    (ranked, choices, join(&record))
}

fn max_drawdown(equity: &[f64]) -> f64 {
    let mut peak = 1.0f64;
    let mut dd = 0.0f64;
    for &e in equity {
        peak = peak.max(e);
        dd = dd.max((peak - e) / peak);
    }
    dd
}

fn curve(label: String, growth: impl Iterator<Item = f64>) -> Curve {
    let mut e = 1.0;
    Curve {
        label,
        equity: growth
            .map(|g| {
                e *= g;
                e
            })
            .collect(),
    }
}

/// Merges the units' `results.csv` outputs, checks them against the job's price data
/// (`prices_csv`, the input the units read), ranks every set out of sample and draws up the
/// curves of the benchmark, the walk-forward record and the best sets.
pub fn combine(outputs: &[&[u8]], prices_csv: &str) -> Result<Backtest, CombineError> {
    let bars = exo_app_backtest::parse_csv(prices_csv)
        .map_err(|e| CombineError::Inconsistent(format!("prices.csv: {e}")))?;
    let mut header: Option<String> = None;
    let mut config = Config::default();
    let mut rows = Vec::new();
    let mut seen = BTreeSet::new();
    for (unit, bytes) in outputs.iter().enumerate() {
        let bad = |reason: String| CombineError::BadOutput { unit, reason };
        let text =
            std::str::from_utf8(bytes).map_err(|_| bad("results.csv is not UTF-8".into()))?;
        let first = text.lines().next().unwrap_or_default();
        let c = exo_app_backtest::config_of_header(first).map_err(bad)?;
        let (h, unit_rows) = exo_app_backtest::parse_results(text, c.folds).map_err(bad)?;
        match &header {
            None => {
                let expect = exo_app_backtest::header(&bars, &c);
                if h != expect {
                    return Err(CombineError::Inconsistent(format!(
                        "unit {unit} ran on other data or settings: {h:?}, the job's prices give {expect:?}"
                    )));
                }
                config = c;
                header = Some(h);
            }
            Some(prev) if *prev != h => {
                return Err(CombineError::Inconsistent(format!(
                    "units disagree on the data or settings: {prev:?} and {h:?}"
                )));
            }
            Some(_) => {}
        }
        for r in unit_rows {
            if !seen.insert(r.strategy) {
                return Err(CombineError::Inconsistent(format!(
                    "{} is reported twice",
                    r.strategy.label()
                )));
            }
            rows.push(r);
        }
    }
    if rows.is_empty() {
        return Err(CombineError::Inconsistent(
            "no parameter set was reported".into(),
        ));
    }
    let (ranked, choices, walk_forward) = rank(&rows, config.folds);

    // Curves over the out-of-sample days, recomputed from the data: the units report statistics,
    // not every day of every set.
    let days = bars.len() - 1;
    let ranges = blocks(days, config.folds).map_err(CombineError::Inconsistent)?;
    let oos_start = ranges.first().map_or(0, |r| r.end);
    let growth_of = |s: Strategy| daily_growth(&bars, &signals(&bars, s), &config);
    let hold = growth_of(Strategy::Hold);
    let benchmark_curve = curve(
        Strategy::Hold.label(),
        hold[oos_start..].iter().map(|(g, _)| *g),
    );
    let mut hold_blocks = Vec::new();
    for range in &ranges {
        let mut s = Stats::default();
        hold[range.clone()].iter().for_each(|&(g, t)| s.push(g, t));
        hold_blocks.push(s);
    }
    let benchmark = Ranked {
        strategy: Strategy::Hold,
        oos: join(&hold_blocks[1..]),
        oos_max_drawdown: max_drawdown(&benchmark_curve.equity),
        in_sample: hold_blocks[0],
        chosen_folds: 0,
    };
    let mut wf_growth = Vec::with_capacity(days - oos_start);
    for (fold, choice) in choices.iter().enumerate() {
        let g = growth_of(*choice);
        wf_growth.extend(g[ranges[fold + 1].clone()].iter().map(|(g, _)| *g));
    }
    let wf_curve = curve("walk-forward".into(), wf_growth.into_iter());
    let mut curves = vec![benchmark_curve, wf_curve];
    for r in ranked.iter().take(PLOTTED_SETS) {
        let g = growth_of(r.strategy);
        curves.push(curve(
            r.strategy.label(),
            g[oos_start..].iter().map(|(g, _)| *g),
        ));
    }
    Ok(Backtest {
        config,
        benchmark,
        walk_forward_max_drawdown: max_drawdown(&curves[1].equity),
        walk_forward,
        choices,
        // Return day i is bar i + 1.
        dates: bars[oos_start + 1..].iter().map(|b| b.date).collect(),
        fold_starts: ranges[2..].iter().map(|r| r.start - oos_start).collect(),
        curves,
        ranked,
    })
}

/// `ranking.csv`: one row per parameter set, best first on out-of-sample data.
pub fn ranking_csv(b: &Backtest) -> String {
    let mut out = String::from(
        "rank,strategy,p1,p2,p3,label,oos_sharpe,oos_sharpe_se,oos_return,oos_max_drawdown,oos_trades,oos_days,in_sample_sharpe,walk_forward_folds\n",
    );
    for (i, r) in b.ranked.iter().enumerate() {
        let [p1, p2, p3] = r.strategy.params();
        let _ = writeln!(
            out,
            "{},{},{p1},{p2},{p3},{},{:.4},{:.4},{:.6},{:.6},{},{},{:.4},{}",
            i + 1,
            r.strategy.name(),
            r.strategy.label(),
            r.oos.sharpe(),
            r.oos.sharpe_se(),
            r.oos.total_return(),
            r.oos_max_drawdown,
            r.oos.trades,
            r.oos.days,
            r.in_sample.sharpe(),
            r.chosen_folds
        );
    }
    out
}

/// The colours of `equity.png`'s curves, in [`Backtest::curves`] order: benchmark (black),
/// walk-forward (red), then the best sets (blue, green, orange).
pub const CURVE_COLOURS: &[(&str, [u8; 3])] = &[
    ("black", [20, 20, 20]),
    ("red", [215, 40, 40]),
    ("blue", [40, 90, 215]),
    ("green", [30, 150, 60]),
    ("orange", [235, 140, 20]),
];

/// `equity.png`: the out-of-sample equity curves on a log scale, with light lines at each
/// doubling, grey lines at each new year and dark dashed lines where each fold begins. A legend
/// of colour swatches sits at the top left, in [`CURVE_COLOURS`] order.
pub fn equity_png(b: &Backtest, width: u32, height: u32) -> Result<Vec<u8>, CombineError> {
    let series: Vec<(&[f64], [u8; 3])> = b
        .curves
        .iter()
        .zip(CURVE_COLOURS.iter())
        .map(|(c, (_, colour))| (c.equity.as_slice(), *colour))
        .collect();
    let years: Vec<usize> = (1..b.dates.len())
        .filter(|&i| b.dates[i] / 10_000 != b.dates[i - 1] / 10_000)
        .collect();
    crate::plot::log_chart(width, height, &series, &years, &b.fold_starts)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn tokens(text: &str) -> Vec<String> {
        text.split(' ').map(String::from).collect()
    }

    fn stats(days: u32, daily: f64, noise: f64) -> Stats {
        let mut s = Stats::default();
        for i in 0..days {
            s.push(1.0 + daily + if i % 2 == 0 { noise } else { -noise }, false);
        }
        s
    }

    #[test]
    fn a_plan_slices_the_grid_without_gaps_or_overlaps() {
        let lines = plan(&tokens("folds=3 cost=2"), 7).unwrap();
        assert_eq!(lines.len(), 7);
        let mut next = 0;
        for line in &lines {
            assert!(line.len() <= 256, "{line}");
            let args = UnitArgs::parse(&tokens(line), true).unwrap();
            assert_eq!(args.sets.0, next);
            next = args.sets.1;
            assert_eq!(args.config.folds, 3);
        }
        let total = UnitArgs::parse(&tokens(&DEFAULT_GRID.join(" ")), false)
            .unwrap()
            .sets
            .1;
        assert_eq!(next, total);
        assert!(plan(&tokens("sma=5:10:5/20:20:1"), 3).is_err());
        assert!(plan(&tokens("sets=0:1"), 1).is_err());
        assert!(plan(&tokens("fill=never"), 1).is_err());
    }

    #[test]
    fn the_ranking_uses_out_of_sample_blocks_only_and_walk_forward_trades_what_it_chose() {
        // A shines in block 0 (in sample) and fades; B is dull in block 0 and good after.
        let a = Row {
            strategy: Strategy::Sma { fast: 5, slow: 20 },
            blocks: vec![
                stats(100, 0.004, 0.01),
                stats(100, -0.001, 0.01),
                stats(100, -0.001, 0.01),
            ],
            oos_max_drawdown: 0.2,
        };
        let b = Row {
            strategy: Strategy::Breakout {
                entry: 20,
                exit: 10,
            },
            blocks: vec![
                stats(100, 0.0, 0.01),
                stats(100, 0.002, 0.01),
                stats(100, 0.002, 0.01),
            ],
            oos_max_drawdown: 0.1,
        };
        let (ranked, choices, record) = rank(&[a.clone(), b.clone()], 2);
        assert_eq!(ranked[0].strategy, b.strategy);
        assert!(ranked[1].in_sample.sharpe() > ranked[0].in_sample.sharpe());
        // Fold 1 chose on block 0 alone (A) and traded block 1; fold 2 chose on blocks 0 and 1.
        assert_eq!(choices[0], a.strategy);
        assert_eq!(record.days, 200);
        let expect = a.blocks[1].join(&(if choices[1] == a.strategy { &a } else { &b }).blocks[2]);
        assert_eq!(record, expect);
        // Changing block 0 changes no out-of-sample figure or rank.
        let mut a2 = a.clone();
        a2.blocks[0] = stats(100, -0.01, 0.01);
        let (ranked2, choices2, _) = rank(&[a2, b.clone()], 2);
        assert_eq!(
            ranked2
                .iter()
                .map(|r| (r.strategy, r.oos))
                .collect::<Vec<_>>(),
            ranked
                .iter()
                .map(|r| (r.strategy, r.oos))
                .collect::<Vec<_>>()
        );
        assert_eq!(choices2[0], b.strategy);
    }

    #[test]
    fn the_units_outputs_over_the_shipped_data_give_a_ranking_and_a_chart() {
        let lines = plan(
            &tokens("sma=10:50:20/100:200:100 breakout=50:100:50/20:20:1 folds=2"),
            2,
        )
        .unwrap();
        let bars = exo_app_backtest::parse_csv(crate::SP500_CSV).unwrap();
        let outputs: Vec<Vec<u8>> = lines
            .iter()
            .map(|l| {
                let args = UnitArgs::parse(&tokens(l), true).unwrap();
                let rows = exo_app_backtest::run_unit(&bars, &args).unwrap();
                exo_app_backtest::format_results(
                    &exo_app_backtest::header(&bars, &args.config),
                    &rows,
                )
                .into_bytes()
            })
            .collect();
        let refs: Vec<&[u8]> = outputs.iter().map(Vec::as_slice).collect();
        assert!(refs.iter().all(|o| recognises(o)));
        let b = combine(&refs, crate::SP500_CSV).unwrap();
        assert_eq!(b.ranked.len(), 6 + 2);
        assert_eq!(b.choices.len(), 2);
        assert_eq!(b.curves.len(), 2 + PLOTTED_SETS);
        assert!(b.curves.iter().all(|c| c.equity.len() == b.dates.len()));
        assert_eq!(b.fold_starts.len(), 1);
        let csv = ranking_csv(&b);
        assert_eq!(csv.lines().count(), 1 + 8);
        assert!(csv.lines().nth(1).unwrap().starts_with("1,"));
        let png = equity_png(&b, 400, 200).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        // Units that ran on other data are refused.
        let other = crate::SP500_CSV.replacen("2000-01-03", "1999-12-31", 1);
        assert!(matches!(
            combine(&refs, &other),
            Err(CombineError::Inconsistent(_))
        ));
        // A set reported twice is refused.
        assert!(matches!(
            combine(&[refs[0], refs[0]], crate::SP500_CSV),
            Err(CombineError::Inconsistent(_))
        ));
    }
}
