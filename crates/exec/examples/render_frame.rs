//! The render job end to end on one machine: compile the studio scene, split a frame into
//! tiles, run each tile as a unit in the sandbox, assemble the PNG.
//! `cargo run --release -p exo-exec --example render_frame -- OUT.png [width height samples frame]`.

use exo_apps::render::{Tile, assemble_png, plan_tiles, tile_args};
use exo_exec::{Outcome, Sandbox, SandboxConfig, UnitSpec};

fn main() -> anyhow::Result<()> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let out = argv.first().cloned().unwrap_or_else(|| "frame.png".into());
    let num = |i: usize, d: u32| argv.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let (width, height, samples, frame) = (num(1, 320), num(2, 240), num(3, 16), num(4, 0));
    let sandbox = Sandbox::new(SandboxConfig::new(
        std::env::temp_dir().join("exo-exec-cache"),
    ))?;
    let tiles = plan_tiles(width, height, 64, 64)?;
    let scene = exo_apps::render::studio_scene()?;
    let mut parts: Vec<(Tile, Vec<u8>)> = Vec::new();
    let mut fuel = 0u64;
    for (i, tile) in tiles.iter().enumerate() {
        let spec = UnitSpec::wasm(exo_apps::RENDER_WASM)
            .args(tile_args(width, height, tile, samples, frame))
            .input(exo_apps::render::SCENE_INPUT, &scene.canonical)
            .unit(i as u64, 0)
            .timeout_ms(120_000)
            .fuel(u64::MAX / 4);
        let r = sandbox.run(&spec)?;
        anyhow::ensure!(r.outcome == Outcome::Ok, "tile {i}: {}", r.outcome);
        fuel += r.fuel_used;
        parts.push((*tile, r.output("tile.ppm").unwrap_or_default().to_vec()));
    }
    let refs: Vec<(Tile, &[u8])> = parts.iter().map(|(t, b)| (*t, b.as_slice())).collect();
    std::fs::write(&out, assemble_png(width, height, &refs)?)?;
    println!(
        "{out}: {width}x{height}, {samples} spp, {} tiles, {fuel} fuel",
        tiles.len()
    );
    Ok(())
}
