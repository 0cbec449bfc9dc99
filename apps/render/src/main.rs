//! `render` guest: renders one tile of one frame of a canonical scene.
//!
//! Args: `width height tile_x tile_y tile_w tile_h samples [frame]`. Input: `/in/scene.bin`, a
//! canonical scene (`exo_app_render::canonical`). Outputs: `/out/tile.ppm`, the tile in 8-bit
//! sRGB, and `/out/tile.txt`, the argument line, so that the requester can place the tile in its
//! frame from the verified outputs alone.

use exo_app_render::{Scene, SceneDesc, TileParams, ppm, render_tile};

/// The input a unit reads.
const SCENE_INPUT: &str = "scene.bin";

fn main() {
    let params = match TileParams::from_args(&exo_guest::args()) {
        Ok(p) => p,
        Err(e) => exo_guest::fail(64, &e),
    };
    let desc = match exo_guest::read_input(SCENE_INPUT) {
        Ok(bytes) => SceneDesc::decode(&bytes)
            .unwrap_or_else(|e| exo_guest::fail(65, &format!("{SCENE_INPUT}: {e}"))),
        Err(e) => exo_guest::fail(66, &format!("cannot read /in/{SCENE_INPUT}: {e}")),
    };
    let scene = Scene::new(&desc);
    let pixels = render_tile(&scene, &params);
    let file = ppm::encode(params.tile_w, params.tile_h, &pixels);
    for (name, bytes) in [
        ("tile.ppm", file),
        ("tile.txt", format!("{params}\n").into_bytes()),
    ] {
        if let Err(e) = exo_guest::write_output(name, &bytes) {
            exo_guest::fail(74, &format!("cannot write /out/{name}: {e}"));
        }
    }
    println!(
        "tile {}x{} at ({},{}) of {}x{} frame {}, {} spp",
        params.tile_w,
        params.tile_h,
        params.tile_x,
        params.tile_y,
        params.width,
        params.height,
        params.frame,
        params.samples
    );
}
