//! `montecarlo` guest: prices a European option on this unit's share of the paths.
//!
//! Args: `spot strike rate vol maturity_years paths [call|put]`. Output: `/out/sums.txt`, exact
//! integer sums that the requester merges across units.

use exo_app_montecarlo::{OptionSpec, simulate};

fn main() {
    let (spec, paths) = match OptionSpec::from_args(&exo_guest::args()) {
        Ok(v) => v,
        Err(e) => exo_guest::fail(64, &e),
    };
    let mut rng = exo_guest::Rng::for_stream(exo_guest::seed(), exo_guest::unit_index());
    let sums = simulate(&spec, paths, &mut rng);
    if let Err(e) = exo_guest::write_output("sums.txt", sums.encode().as_bytes()) {
        exo_guest::fail(74, &format!("cannot write /out/sums.txt: {e}"));
    }
    let (price, se) = sums.price(&spec);
    println!("{paths} paths: unit estimate {price:.4} +- {se:.4}");
}
