//! The example apps `exo job submit --app NAME` knows by name: their embedded modules, the plans
//! that split a job into units (`--param KEY=VALUE`), and the combined files `exo job results`
//! writes from their units' outputs (`ranking.csv` and `equity.png` for `backtest`,
//! `estimate.json` for `montecarlo`, `frame-NNNN.png` and `animation.png` for `render`). The
//! planning and combining are `exo-apps` functions; this
//! module only reads and writes.

use crate::CliError;
use exo_apps::{backtest, montecarlo, render};
use exo_client::{Client, outputs::Archive, wire};
use exo_types::MAX_UNIT_ARGS_LEN;
use serde_json::{Value, json};
use std::path::Path;

/// The input a backtest unit reads.
pub const PRICES_INPUT: &str = "prices.csv";
/// Size of `equity.png`.
const CHART_SIZE: (u32, u32) = (1200, 600);

/// The embedded module of a built-in app.
pub fn module(name: &str) -> Option<&'static [u8]> {
    match name {
        "hello" => Some(exo_apps::HELLO_WASM),
        "render" => Some(exo_apps::RENDER_WASM),
        "backtest" => Some(exo_apps::BACKTEST_WASM),
        "montecarlo" => Some(exo_apps::MONTECARLO_WASM),
        _ => None,
    }
}

/// A built-in app's job: each unit's argument line and the inputs the plan adds.
#[derive(Debug)]
pub struct Plan {
    pub unit_args: Vec<String>,
    pub inputs: Vec<(String, &'static [u8])>,
}

/// Splits a job of the built-in app `app` into `units` units. `has_prices` says whether the
/// requester gives its own `prices.csv`; a backtest without one runs on the S&P 500 series the
/// project ships.
pub fn plan(app: &str, params: &[String], units: u32, has_prices: bool) -> Result<Plan, CliError> {
    let invalid = |e: exo_apps::CombineError| CliError::Invalid(format!("--app {app}: {e}"));
    let (unit_args, inputs) = match app {
        "backtest" => {
            let inputs = if has_prices {
                Vec::new()
            } else {
                vec![(PRICES_INPUT.to_string(), exo_apps::SP500_CSV.as_bytes())]
            };
            (backtest::plan(params, units).map_err(invalid)?, inputs)
        }
        "montecarlo" => (
            montecarlo::plan(params, units).map_err(invalid)?,
            Vec::new(),
        ),
        other => {
            return Err(CliError::Invalid(format!(
                "--param is for --app backtest or --app montecarlo, not {other:?}"
            )));
        }
    };
    if let Some(line) = unit_args.iter().find(|l| l.len() > MAX_UNIT_ARGS_LEN) {
        return Err(CliError::Invalid(format!(
            "a unit's arguments would be over {MAX_UNIT_ARGS_LEN} bytes: {line:?}"
        )));
    }
    Ok(Plan { unit_args, inputs })
}

fn file<'a>(archive: &'a Archive, name: &str) -> Option<&'a [u8]> {
    archive
        .files
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, b)| b.as_slice())
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    std::fs::write(path, bytes)
        .map_err(|e| CliError::Other(format!("cannot write {}: {e}", path.display())))
}

/// If every unit's outputs are a built-in app's, combines them into that app's files under
/// `out` and returns what to report; `None` for other apps.
pub async fn combine(
    client: &Client,
    job: &wire::Job,
    archives: &[&Archive],
    out: &Path,
) -> Result<Option<(String, Value)>, CliError> {
    if archives.is_empty() {
        return Ok(None);
    }
    let all = |name: &str, recognises: fn(&[u8]) -> bool| -> Option<Vec<&[u8]>> {
        archives
            .iter()
            .map(|a| file(a, name).filter(|b| recognises(b)))
            .collect()
    };
    if let Some(outputs) = all("results.csv", backtest::recognises) {
        let input = job
            .inputs
            .iter()
            .find(|i| i.name == PRICES_INPUT)
            .ok_or_else(|| CliError::Other(format!("the job has no {PRICES_INPUT} input")))?;
        let bytes = client.get_blob(&input.hash).await?;
        let prices = String::from_utf8(bytes)
            .map_err(|_| CliError::Other(format!("{PRICES_INPUT} is not UTF-8")))?;
        let combined = backtest::combine(&outputs, &prices)
            .map_err(|e| CliError::Other(format!("combining the backtest: {e}")))?;
        return write_backtest(&combined, out).map(Some);
    }
    if let Some(records) = all(render::TILE_RECORD, render::recognises) {
        let tiles: Vec<(&[u8], &[u8])> = records
            .into_iter()
            .zip(archives)
            .map(|(record, a)| (record, file(a, render::TILE_OUTPUT).unwrap_or_default()))
            .collect();
        let frames = render::frames_from_outputs(&tiles)
            .map_err(|e| CliError::Other(format!("combining the render tiles: {e}")))?;
        return write_render(&frames, out).map(Some);
    }
    if let Some(outputs) = all("sums.txt", montecarlo::recognises) {
        let combined = montecarlo::combine(&outputs)
            .map_err(|e| CliError::Other(format!("combining the montecarlo sums: {e}")))?;
        return write_montecarlo(&combined, out).map(Some);
    }
    Ok(None)
}

/// Writes `frame-NNNN.png` for every complete frame and, with more than one, `animation.png`
/// (APNG) of them in order; frames some tiles are missing from are listed, not written.
fn write_render(frames: &render::Frames, out: &Path) -> Result<(String, Value), CliError> {
    let png_error = |e: exo_apps::CombineError| CliError::Other(format!("encoding PNG: {e}"));
    let mut written = Vec::with_capacity(frames.complete.len());
    for (number, rgb) in &frames.complete {
        let path = out.join(format!("frame-{number:04}.png"));
        write(
            &path,
            &render::encode_png(frames.width, frames.height, rgb).map_err(png_error)?,
        )?;
        written.push(path.display().to_string());
    }
    let animation = if frames.complete.len() > 1 {
        let rgbs: Vec<&[u8]> = frames.complete.values().map(Vec::as_slice).collect();
        let path = out.join("animation.png");
        write(
            &path,
            &render::animation_png(frames.width, frames.height, &rgbs).map_err(png_error)?,
        )?;
        Some(path.display().to_string())
    } else {
        None
    };
    let incomplete: Vec<Value> = frames
        .incomplete
        .iter()
        .map(|(frame, why)| json!({ "frame": frame, "reason": why.to_string() }))
        .collect();
    let mut text = format!(
        "render: {} frames of {}x{} at {} samples per pixel in {}",
        written.len(),
        frames.width,
        frames.height,
        frames.samples,
        out.display()
    );
    if let Some(path) = &animation {
        text.push_str(&format!(", animated preview in {path}"));
    }
    for (frame, why) in &frames.incomplete {
        text.push_str(&format!("\n  frame {frame} is incomplete: {why}"));
    }
    let json = json!({
        "app": "render",
        "width": frames.width,
        "height": frames.height,
        "samples": frames.samples,
        "frames": written,
        "animation": animation,
        "incomplete": incomplete,
    });
    Ok((text, json))
}

fn stats_json(s: &backtest::Stats, max_drawdown: f64) -> Value {
    json!({
        "sharpe": s.sharpe(),
        "sharpe_se": s.sharpe_se(),
        "total_return": s.total_return(),
        "max_drawdown": max_drawdown,
        "trades": s.trades,
        "days": s.days,
    })
}

fn write_backtest(b: &backtest::Backtest, out: &Path) -> Result<(String, Value), CliError> {
    let ranking = out.join("ranking.csv");
    write(&ranking, backtest::ranking_csv(b).as_bytes())?;
    let png = backtest::equity_png(b, CHART_SIZE.0, CHART_SIZE.1)
        .map_err(|e| CliError::Other(format!("drawing equity.png: {e}")))?;
    let equity = out.join("equity.png");
    write(&equity, &png)?;
    let legend: Vec<Value> = b
        .curves
        .iter()
        .zip(backtest::CURVE_COLOURS)
        .map(|(c, (colour, _))| json!({ "colour": colour, "curve": c.label }))
        .collect();
    let best = b.ranked.first();
    let json = json!({
        "app": "backtest",
        "ranking": ranking.display().to_string(),
        "equity": equity.display().to_string(),
        "sets": b.ranked.len(),
        "folds": b.config.folds,
        "fill": backtest::fill_name(b.config.fill),
        "out_of_sample": {
            "from": b.dates.first(),
            "to": b.dates.last(),
        },
        "best": best.map(|r| json!({
            "set": r.strategy.label(),
            "out_of_sample": stats_json(&r.oos, r.oos_max_drawdown),
            "in_sample_sharpe": r.in_sample.sharpe(),
        })),
        "walk_forward": {
            "choices": b.choices.iter().map(|c| c.label()).collect::<Vec<_>>(),
            "out_of_sample": stats_json(&b.walk_forward, b.walk_forward_max_drawdown),
        },
        "benchmark": stats_json(&b.benchmark.oos, b.benchmark.oos_max_drawdown),
        "legend": legend,
    });
    let line = |name: &str, s: &backtest::Stats| {
        format!(
            "  {name:<28} Sharpe {:>6.3} ± {:.3}, return {:>8.1}%",
            s.sharpe(),
            s.sharpe_se(),
            100.0 * s.total_return()
        )
    };
    let mut text = format!(
        "backtest: {} parameter sets ranked out of sample ({} folds, {} fills) in {}\n",
        b.ranked.len(),
        b.config.folds,
        backtest::fill_name(b.config.fill),
        ranking.display()
    );
    if let Some(r) = best {
        text.push_str(&line(&format!("best: {}", r.strategy.label()), &r.oos));
        text.push('\n');
    }
    text.push_str(&line("walk-forward", &b.walk_forward));
    text.push('\n');
    text.push_str(&line("buy and hold", &b.benchmark.oos));
    text.push_str(&format!(
        "\n  equity curves in {} ({})",
        equity.display(),
        b.curves
            .iter()
            .zip(backtest::CURVE_COLOURS)
            .map(|(c, (colour, _))| format!("{colour}: {}", c.label))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    Ok((text, json))
}

fn write_montecarlo(c: &montecarlo::Combined, out: &Path) -> Result<(String, Value), CliError> {
    let e = &c.estimate;
    let reference = c.reference.map(|(method, price)| {
        json!({
            "method": method,
            "price": price,
            "standard_errors_away": (e.price - price) / e.standard_error,
        })
    });
    let json = json!({
        "app": "montecarlo",
        "option": c.spec.canonical(),
        "units": c.units,
        "samples": e.samples,
        "paths": e.samples.saturating_mul(2),
        "estimate": e.price,
        "standard_error": e.standard_error,
        "confidence_level": 0.95,
        "interval": [e.low, e.high],
        "reference": reference,
        "exact_sums": {
            "pairs": c.sums.pairs,
            "sum_of_pair_payoffs_hex": c.sums.sum.to_hex(),
            "sum_unit": "2^-1074",
            "sum_of_squared_pair_payoffs_hex": c.sums.sum_sq.to_hex(),
            "sum_sq_unit": "2^-2148",
        },
    });
    let path = out.join("estimate.json");
    let pretty = serde_json::to_string_pretty(&json).map_err(|e| CliError::Other(e.to_string()))?;
    write(&path, format!("{pretty}\n").as_bytes())?;
    let mut text = format!(
        "montecarlo: {} = {:.6e} ± {:.3e} (95% interval {:.6e} to {:.6e}) from {} paths in {} units, in {}",
        c.spec.canonical(),
        e.price,
        e.standard_error,
        e.low,
        e.high,
        e.samples.saturating_mul(2),
        c.units,
        path.display()
    );
    if let Some((method, price)) = c.reference {
        text.push_str(&format!(
            "\n  {method}: {price:.6e} ({:+.2} standard errors)",
            (e.price - price) / e.standard_error
        ));
    }
    Ok((text, json))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn params(text: &str) -> Vec<String> {
        text.split(' ').map(String::from).collect()
    }

    #[test]
    fn a_backtest_plan_ships_the_sp500_prices_unless_given_its_own() {
        let p = plan("backtest", &[], 4, false).unwrap();
        assert_eq!(p.unit_args.len(), 4);
        assert_eq!(p.inputs.len(), 1);
        assert_eq!(p.inputs[0].0, PRICES_INPUT);
        assert!(plan("backtest", &[], 4, true).unwrap().inputs.is_empty());
        assert!(plan("render", &params("a=b"), 1, false).is_err());
        let mc = plan(
            "montecarlo",
            &params("spot=1 strike=1 vol=0.2 maturity=1 paths=100"),
            5,
            false,
        )
        .unwrap();
        assert_eq!(mc.unit_args.len(), 5);
        assert!(mc.inputs.is_empty());
        assert!(matches!(
            plan(
                "montecarlo",
                &params("spot=1e301 strike=1 vol=0.2 maturity=1 paths=100"),
                5,
                false
            ),
            Err(CliError::Invalid(_))
        ));
    }
}
