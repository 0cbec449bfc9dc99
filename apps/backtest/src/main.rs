//! `backtest` guest: backtests a slice of a strategy grid with walk-forward block statistics.
//!
//! Args: `key=value` tokens, `[sma=F/S] [rsi=P/L/U] [breakout=E/X] [fill=next-open|same-close]
//! [cost=BPS] [slip=BPS] [folds=K] sets=LO:HI` (each range `lo:hi:step`). Input:
//! `/in/prices.csv` (`date,open,high,low,close,...`). Output: `/out/results.csv`.

use exo_app_backtest::{UnitArgs, format_results, header, parse_csv, run_unit};

fn main() {
    let args = match UnitArgs::parse(&exo_guest::args(), true) {
        Ok(a) => a,
        Err(e) => exo_guest::fail(64, &e),
    };
    let text = match exo_guest::read_input_string("prices.csv") {
        Ok(t) => t,
        Err(e) => exo_guest::fail(66, &format!("cannot read /in/prices.csv: {e}")),
    };
    let bars = match parse_csv(&text) {
        Ok(b) => b,
        Err(e) => exo_guest::fail(65, &format!("prices.csv: {e}")),
    };
    let rows = match run_unit(&bars, &args) {
        Ok(r) => r,
        Err(e) => exo_guest::fail(65, &e),
    };
    let csv = format_results(&header(&bars, &args.config), &rows);
    if let Err(e) = exo_guest::write_output("results.csv", csv.as_bytes()) {
        exo_guest::fail(74, &format!("cannot write /out/results.csv: {e}"));
    }
    println!("{} bars, {} parameter sets", bars.len(), rows.len());
}
