//! What light sampling buys: renders frame 0 of the studio scene natively with paths alone and
//! with next-event estimation + MIS at the same sample count, and a high-sample reference, then
//! prints each image's RMSE against the reference (linear radiance, and 8-bit sRGB codes) and
//! the time each took, and writes the three PNGs.
//!
//! `cargo run --release -p exo-apps --example render_noise -- OUT_DIR [width height samples reference_samples]`

use exo_app_render::{Lighting, Scene, TileParams, render_tile_linear, tonemap::Srgb8};
use std::time::Instant;

type Error = Box<dyn std::error::Error>;
/// An image's mean radiance per channel, its sRGB codes, and the seconds it took.
type Rendered = (Vec<f64>, Vec<u8>, f64);

fn main() -> Result<(), Error> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let out = std::path::PathBuf::from(argv.first().cloned().unwrap_or_else(|| ".".into()));
    let num = |i: usize, d: u32| argv.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let (width, height, samples, reference) = (num(1, 200), num(2, 150), num(3, 64), num(4, 1024));
    let compiled = exo_apps::render::studio_scene()?;
    let scene = Scene::new(&compiled.desc);
    let mut path_only = scene.clone();
    path_only.lighting = Lighting::PathOnly;
    let srgb = Srgb8::new();
    let params = |samples| TileParams::whole(width, height, samples, 0);
    let render = |scene: &Scene, samples: u32, name: &str| -> Result<Rendered, Error> {
        let start = Instant::now();
        let linear = render_tile_linear(scene, &params(samples));
        let secs = start.elapsed().as_secs_f64();
        let codes: Vec<u8> = linear
            .iter()
            .map(|&c| srgb.tone_map(c, scene.exposure))
            .collect();
        let png = exo_apps::render::encode_png(width, height, &codes)?;
        std::fs::write(out.join(format!("{name}.png")), png)?;
        Ok((linear, codes, secs))
    };
    let (ref_linear, ref_codes, ref_secs) =
        render(&scene, reference, &format!("reference-{reference}spp"))?;
    println!("reference: {width}x{height}, {reference} spp with light sampling, {ref_secs:.1} s");
    for (name, s) in [("paths-only", &path_only), ("light-sampling", &scene)] {
        let (linear, codes, secs) = render(s, samples, &format!("{name}-{samples}spp"))?;
        println!(
            "{name:>15}: {samples} spp, RMSE {:.4} linear, {:.2} in 8-bit sRGB codes, {secs:.2} s",
            rmse(&linear, &ref_linear),
            rmse(
                &codes.iter().map(|&c| c as f64).collect::<Vec<_>>(),
                &ref_codes.iter().map(|&c| c as f64).collect::<Vec<_>>()
            ),
        );
    }
    Ok(())
}

fn rmse(a: &[f64], b: &[f64]) -> f64 {
    let sum: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
    (sum / a.len() as f64).sqrt()
}
