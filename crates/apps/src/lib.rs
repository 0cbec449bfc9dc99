//! `exo-apps`: the example task apps, compiled to `wasm32-wasip1` and embedded, with the
//! requester-side helpers that split a job into units and combine the units' outputs.
//!
//! - `render`: [`RENDER_WASM`]; [`render::scene_file::compile`] turns a scene file into the
//!   canonical scene units read, [`render::plan_job`] splits frames into tiles,
//!   [`render::frames_from_outputs`] and [`render::animation_png`] turn the tiles' outputs into
//!   frames and an animated preview.
//! - `backtest`: [`BACKTEST_WASM`]; [`backtest::plan`] spreads a strategy grid over units,
//!   [`backtest::combine`] merges their `results.csv` outputs, ranks every parameter set out of
//!   sample, runs the walk-forward selection and draws the equity curves
//!   ([`backtest::ranking_csv`], [`backtest::equity_png`]).
//! - `montecarlo`: [`MONTECARLO_WASM`]; [`montecarlo::plan`] splits the paths over units with a
//!   stream each, [`montecarlo::combine`] reduces the units' `sums.txt` exactly into an estimate
//!   with its standard error and confidence interval.
//! - `hello` and `probe`: a minimal app and a hostile one, for benchmarks and sandbox tests.
//!
//! The wasm is built by `build.rs` with a separate cargo invocation. This crate never runs a
//! module: that is `exo-exec`'s job. It must stay free of I/O so that every helper is a pure
//! function of its inputs.

include!(concat!(env!("OUT_DIR"), "/wasm.rs"));

/// The Stanford bunny (public domain), a mesh of the `render` studio scene.
pub const BUNNY_OBJ: &str = include_str!("../../../apps/data/bunny.obj");
/// The `render` example scene (the demo's): the bunny, `props.obj` with `props.mtl`, two lights
/// and an orbiting camera. Compile it with [`render::studio_scene`].
pub const STUDIO_SCENE: &str = include_str!("../../../apps/data/studio.toml");
pub const PROPS_OBJ: &str = include_str!("../../../apps/data/props.obj");
pub const PROPS_MTL: &str = include_str!("../../../apps/data/props.mtl");
/// Daily S&P 500 bars 2000–2020 (`date,open,high,low,close,adjclose,volume`); pass it as input
/// `prices.csv` to `backtest`.
pub const SP500_CSV: &str = include_str!("../../../apps/data/sp500-daily-2000-2020.csv");

pub mod backtest;
pub mod montecarlo;
mod plot;
pub mod render;

/// Why a unit's output could not be combined.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CombineError {
    #[error("unit {unit}: {reason}")]
    BadOutput { unit: usize, reason: String },
    #[error("tile {unit} ({x},{y} {w}x{h}) does not fit the {width}x{height} frame")]
    TileOutOfFrame {
        unit: usize,
        x: u32,
        y: u32,
        w: u32,
        h: u32,
        width: u32,
        height: u32,
    },
    #[error("pixel ({x},{y}) is covered by more than one tile")]
    Overlap { x: u32, y: u32 },
    #[error("{missing} pixels are covered by no tile")]
    Missing { missing: u64 },
    #[error("bad plan: {0}")]
    BadPlan(String),
    /// The units' outputs decode but do not fit together (another option, a repeated stream).
    #[error("{0}")]
    Inconsistent(String),
    #[error("PNG encoding failed: {0}")]
    Png(String),
}
