//! `montecarlo` guest: prices an option on this unit's share of the samples.
//!
//! Args: `key=value` tokens, `kernel=european|asian type=call|put spot= strike= rate= vol=
//! maturity= [steps= average=arithmetic|geometric] pairs= seed= stream=`. Output:
//! `/out/sums.txt`, exact integer sums that the requester merges across units.

use exo_app_montecarlo::{Estimate, UnitArgs, simulate};

fn main() {
    let args = match UnitArgs::from_args(&exo_guest::args()) {
        Ok(v) => v,
        Err(e) => exo_guest::fail(64, &e.to_string()),
    };
    let partial = match simulate(&args) {
        Ok(p) => p,
        Err(e) => exo_guest::fail(65, &e.to_string()),
    };
    if let Err(e) = exo_guest::write_output("sums.txt", partial.encode().as_bytes()) {
        exo_guest::fail(74, &format!("cannot write /out/sums.txt: {e}"));
    }
    match Estimate::from_sums(&args.spec, &partial.sums) {
        Ok(est) => println!(
            "{} samples: unit estimate {:e} +- {:e}",
            est.samples, est.price, est.standard_error
        ),
        Err(e) => println!("{} samples: {e}", partial.sums.pairs),
    }
}
