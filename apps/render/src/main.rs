//! `render` guest: renders one tile of a frame of the demo scene.
//!
//! Args: `width height tile_x tile_y tile_w tile_h samples [frame]`. Input: `/in/scene.obj`, the
//! mesh (a pyramid stands in when absent). Output: `/out/tile.ppm`.

use exo_app_render::{Scene, TileParams, parse_obj, ppm, render_tile};

fn main() {
    let params = match TileParams::from_args(&exo_guest::args()) {
        Ok(p) => p,
        Err(e) => exo_guest::fail(64, &e),
    };
    let mesh = match exo_guest::read_input_string("scene.obj") {
        Ok(text) => match parse_obj(&text) {
            Ok(m) => Some(m),
            Err(e) => exo_guest::fail(65, &format!("scene.obj: {e}")),
        },
        Err(_) => None,
    };
    let scene = Scene::demo(mesh);
    let pixels = render_tile(&scene, &params);
    let file = ppm::encode(params.tile_w, params.tile_h, &pixels);
    if let Err(e) = exo_guest::write_output("tile.ppm", &file) {
        exo_guest::fail(74, &format!("cannot write /out/tile.ppm: {e}"));
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
