//! The `render` task app's kernel: a small path tracer (triangle meshes from OBJ with a BVH,
//! spheres, diffuse, metal, glass and emissive materials, a pinhole camera, sky light) that
//! renders one tile of a frame.
//!
//! Every pixel draws its random numbers from a stream keyed by (frame, pixel), never by tile or
//! unit, so a frame is the same image however it is split into tiles. The same code runs natively
//! (benchmarks, local previews) and as a `wasm32-wasip1` guest.
//!
//! It must never read the clock or OS randomness: tiles from two providers are compared byte for
//! byte.

mod bvh;
mod math;
mod obj;
pub mod ppm;
mod scene;

pub use math::Vec3;
pub use obj::{Mesh, ObjError, parse_obj};
pub use scene::{Camera, Material, Scene, Sphere};

/// Which part of which frame to render.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TileParams {
    pub width: u32,
    pub height: u32,
    pub tile_x: u32,
    pub tile_y: u32,
    pub tile_w: u32,
    pub tile_h: u32,
    pub samples: u32,
    pub frame: u32,
}

/// Largest frame side and sample count accepted: bounds the work and the output a unit can ask
/// for (fuel bounds it again inside the sandbox).
pub const MAX_SIDE: u32 = 16_384;
pub const MAX_SAMPLES: u32 = 65_536;

impl TileParams {
    /// Parses `width height tile_x tile_y tile_w tile_h samples [frame]`.
    pub fn from_args(args: &[String]) -> Result<Self, String> {
        if args.len() < 7 || args.len() > 8 {
            return Err(format!(
                "usage: render width height tile_x tile_y tile_w tile_h samples [frame] (got {} args)",
                args.len()
            ));
        }
        let mut v = [0u32; 8];
        for (i, a) in args.iter().enumerate() {
            v[i] = a
                .parse()
                .map_err(|_| format!("argument {} is not a u32: {a:?}", i + 1))?;
        }
        let p = TileParams {
            width: v[0],
            height: v[1],
            tile_x: v[2],
            tile_y: v[3],
            tile_w: v[4],
            tile_h: v[5],
            samples: v[6],
            frame: v[7],
        };
        p.validate()?;
        Ok(p)
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.width == 0 || self.height == 0 || self.width > MAX_SIDE || self.height > MAX_SIDE {
            return Err(format!("frame {}x{} out of range", self.width, self.height));
        }
        if self.tile_w == 0 || self.tile_h == 0 {
            return Err("empty tile".into());
        }
        let x_end = self.tile_x.checked_add(self.tile_w);
        let y_end = self.tile_y.checked_add(self.tile_h);
        if x_end.is_none_or(|e| e > self.width) || y_end.is_none_or(|e| e > self.height) {
            return Err(format!(
                "tile {}+{}x{}+{} exceeds the {}x{} frame",
                self.tile_x, self.tile_w, self.tile_y, self.tile_h, self.width, self.height
            ));
        }
        if self.samples == 0 || self.samples > MAX_SAMPLES {
            return Err(format!(
                "samples {} out of range 1..={MAX_SAMPLES}",
                self.samples
            ));
        }
        Ok(())
    }
}

/// Renders the tile and returns its pixels as row-major RGB8 (`tile_w * tile_h * 3` bytes).
pub fn render_tile(scene: &Scene, p: &TileParams) -> Vec<u8> {
    let camera = scene.camera_for(p.width, p.height, p.frame);
    let mut out = Vec::with_capacity(p.tile_w as usize * p.tile_h as usize * 3);
    let frame_seed = exo_guest::splitmix64(&mut (p.frame as u64 ^ 0x05EE_D0FF_4A3E));
    for y in p.tile_y..p.tile_y + p.tile_h {
        for x in p.tile_x..p.tile_x + p.tile_w {
            let pixel = y as u64 * p.width as u64 + x as u64;
            let mut rng = exo_guest::Rng::for_stream(frame_seed, pixel);
            let mut acc = Vec3::ZERO;
            for _ in 0..p.samples {
                let u = (x as f64 + rng.next_f64()) / p.width as f64;
                // Image rows go top to bottom; the camera's v goes bottom to top.
                let v = 1.0 - (y as f64 + rng.next_f64()) / p.height as f64;
                let ray = camera.ray(u, v);
                acc += scene.trace(ray, &mut rng);
            }
            let c = acc / p.samples as f64;
            out.extend_from_slice(&[to_u8(c.x), to_u8(c.y), to_u8(c.z)]);
        }
    }
    out
}

fn to_u8(linear: f64) -> u8 {
    // Gamma 2; NaN (which canonicalization makes identical everywhere) maps to black.
    let g = if linear > 0.0 { linear.sqrt() } else { 0.0 };
    (g.min(1.0) * 255.0 + 0.5) as u8
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn params() {
        let p = TileParams::from_args(&args("64 48 0 0 32 24 4")).unwrap();
        assert_eq!(p.frame, 0);
        assert!(TileParams::from_args(&args("64 48 40 0 32 24 4")).is_err());
        assert!(TileParams::from_args(&args("64 48 0 0 32 24 0")).is_err());
        assert!(TileParams::from_args(&args("64 48 0 0 32 x 4")).is_err());
        assert!(TileParams::from_args(&args("4294967295 48 4294967295 0 2 1 1")).is_err());
    }

    #[test]
    fn tiles_compose_into_the_same_frame() {
        let scene = Scene::demo(None);
        let whole = TileParams::from_args(&args("8 6 0 0 8 6 2")).unwrap();
        let full = render_tile(&scene, &whole);
        let left = render_tile(
            &scene,
            &TileParams::from_args(&args("8 6 0 0 4 6 2")).unwrap(),
        );
        let right = render_tile(
            &scene,
            &TileParams::from_args(&args("8 6 4 0 4 6 2")).unwrap(),
        );
        for y in 0..6 {
            assert_eq!(&full[y * 24..y * 24 + 12], &left[y * 12..y * 12 + 12]);
            assert_eq!(&full[y * 24 + 12..y * 24 + 24], &right[y * 12..y * 12 + 12]);
        }
        assert!(full.iter().any(|&b| b > 0), "the frame is not black");
    }
}
