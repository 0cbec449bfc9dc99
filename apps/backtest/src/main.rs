//! `backtest` guest: backtests a slice of a moving-average crossover grid.
//!
//! Args: `fast_lo fast_hi fast_step slow_lo slow_hi slow_step [cost_bps]`. Input: `/in/prices.csv`
//! (`date,open,high,low,close,...`). Output: `/out/results.csv`.

use exo_app_backtest::{Grid, format_rows, parse_csv, run_grid};

fn main() {
    let grid = match Grid::from_args(&exo_guest::args()) {
        Ok(g) => g,
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
    let rows = run_grid(&bars, &grid);
    if let Err(e) = exo_guest::write_output("results.csv", format_rows(&rows).as_bytes()) {
        exo_guest::fail(74, &format!("cannot write /out/results.csv: {e}"));
    }
    println!("{} bars, {} parameter sets", bars.len(), rows.len());
}
