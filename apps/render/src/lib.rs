//! The `render` task app's kernel: a small path tracer (triangle meshes with a BVH, spheres,
//! spherical area lights sampled by next-event estimation with multiple importance sampling,
//! diffuse, metal, glass and emissive materials, a pinhole camera on a keyframed path, a sky)
//! that renders one tile of one frame, tone-mapped to 8-bit sRGB.
//!
//! It reads only the canonical scene ([`SceneDesc`], `/in/scene.bin`): the requester's side
//! turns scene files, OBJ and MTL into it, so no parser ever runs on a provider.
//!
//! Every pixel draws its random numbers from a stream keyed by (frame, pixel), never by tile or
//! unit, so a frame is the same image however it is split into tiles. The same code runs natively
//! (benchmarks, local previews) and as a `wasm32-wasip1` guest.
//!
//! It must never read the clock or OS randomness: tiles from two providers are compared byte for
//! byte.

mod bvh;
pub mod canonical;
mod math;
pub mod ppm;
mod scene;
pub mod tonemap;

pub use canonical::{CameraKey, Light, Material, MeshDesc, SceneDesc, SphereDesc};
pub use math::Vec3;
pub use scene::{Camera, Lighting, Scene};

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
    /// A whole `width x height` frame as one tile.
    pub fn whole(width: u32, height: u32, samples: u32, frame: u32) -> Self {
        TileParams {
            width,
            height,
            tile_x: 0,
            tile_y: 0,
            tile_w: width,
            tile_h: height,
            samples,
            frame,
        }
    }

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

impl std::fmt::Display for TileParams {
    /// The argument line that [`TileParams::from_args`] reads back.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} {} {} {} {} {} {}",
            self.width,
            self.height,
            self.tile_x,
            self.tile_y,
            self.tile_w,
            self.tile_h,
            self.samples,
            self.frame
        )
    }
}

/// Renders the tile and returns its pixels as row-major 8-bit sRGB.
pub fn render_tile(scene: &Scene, p: &TileParams) -> Vec<u8> {
    let srgb = tonemap::Srgb8::new();
    render_tile_linear(scene, p)
        .iter()
        .map(|&c| srgb.tone_map(c, scene.exposure))
        .collect()
}

/// Renders the tile and returns each pixel's mean radiance, row-major RGB in linear units
/// (`tile_w * tile_h * 3` values): for measuring noise before any quantisation.
pub fn render_tile_linear(scene: &Scene, p: &TileParams) -> Vec<f64> {
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
            out.extend_from_slice(&[c.x, c.y, c.z]);
        }
    }
    out
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

    /// A floor, a grey ball, a small bright light and a two-key camera path.
    fn small_scene() -> SceneDesc {
        let v = Vec3::new;
        SceneDesc {
            exposure: 1.0,
            horizon: v(0.02, 0.02, 0.02),
            zenith: v(0.05, 0.06, 0.08),
            materials: vec![
                Material::Diffuse {
                    albedo: v(0.6, 0.6, 0.6),
                },
                Material::Diffuse {
                    albedo: v(0.8, 0.3, 0.2),
                },
            ],
            meshes: vec![MeshDesc {
                material: 0,
                vertices: vec![
                    v(-5.0, 0.0, -5.0),
                    v(5.0, 0.0, -5.0),
                    v(5.0, 0.0, 5.0),
                    v(-5.0, 0.0, 5.0),
                ],
                triangles: vec![[0, 2, 1], [0, 3, 2]],
            }],
            spheres: vec![SphereDesc {
                center: v(0.0, 0.5, 0.0),
                radius: 0.5,
                material: 1,
            }],
            lights: vec![Light {
                center: v(1.0, 2.5, 1.0),
                radius: 0.15,
                radiance: v(150.0, 140.0, 130.0),
            }],
            camera: vec![
                CameraKey {
                    frame: 0,
                    from: v(0.0, 1.2, 3.0),
                    at: v(0.0, 0.4, 0.0),
                    vfov_deg: 40.0,
                },
                CameraKey {
                    frame: 10,
                    from: v(3.0, 1.2, 0.0),
                    at: v(0.0, 0.4, 0.0),
                    vfov_deg: 50.0,
                },
            ],
        }
    }

    fn render_linear(scene: &Scene, size: (u32, u32), samples: u32) -> Vec<f64> {
        render_tile_linear(scene, &TileParams::whole(size.0, size.1, samples, 0))
    }

    fn rmse(a: &[f64], b: &[f64]) -> f64 {
        let sum: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
        (sum / a.len() as f64).sqrt()
    }

    #[test]
    fn light_sampling_converges_to_the_same_image_with_far_less_noise() {
        let desc = small_scene();
        let nee = Scene::new(&desc);
        let mut path = Scene::new(&desc);
        path.lighting = Lighting::PathOnly;
        let size = (6, 4);
        let reference = render_linear(&nee, size, 512);
        let path_reference = render_linear(&path, size, 4096);
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        // Both estimators are unbiased: their means agree within the path tracer's noise.
        let (m_nee, m_path) = (mean(&reference), mean(&path_reference));
        assert!((m_nee - m_path).abs() < 0.05 * m_nee, "{m_nee} vs {m_path}");
        let nee_error = rmse(&render_linear(&nee, size, 16), &reference);
        let path_error = rmse(&render_linear(&path, size, 16), &reference);
        assert!(
            nee_error * 3.0 < path_error,
            "light sampling {nee_error}, paths alone {path_error}"
        );
    }

    #[test]
    fn the_canonical_scene_survives_a_round_trip_and_refuses_tampering() {
        let desc = small_scene();
        let bytes = desc.encode().unwrap();
        assert_eq!(SceneDesc::decode(&bytes).unwrap(), desc);
        assert!(SceneDesc::decode(&bytes[..bytes.len() - 1]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(SceneDesc::decode(&longer).is_err());
        let mut nan = bytes.clone();
        nan[8..16].copy_from_slice(&f64::NAN.to_le_bytes());
        assert!(SceneDesc::decode(&nan).unwrap_err().contains("not finite"));
        let mut huge = bytes.clone();
        // The material count, right after exposure and the two sky colours.
        huge[64..68].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(SceneDesc::decode(&huge).unwrap_err().contains("at most"));
        let mut dangling = desc.clone();
        dangling.meshes[0].triangles.push([0, 1, 9]);
        assert!(dangling.encode().is_err());
        let mut lights = desc.clone();
        lights.lights = vec![desc.lights[0]; canonical::MAX_LIGHTS + 1];
        assert!(lights.encode().unwrap_err().contains("lights"));
        let mut unordered = desc;
        unordered.camera.swap(0, 1);
        assert!(unordered.encode().is_err());
    }

    #[test]
    fn the_camera_passes_through_its_keys_and_holds_after_the_last() {
        let desc = small_scene();
        let scene = Scene::new(&desc);
        let key = |i: usize| {
            let k = desc.camera[i];
            Camera::look_at(k.from, k.at, k.vfov_deg, 8.0 / 6.0)
        };
        assert_eq!(scene.camera_for(8, 6, 0), key(0));
        assert_eq!(scene.camera_for(8, 6, 10), key(1));
        assert_eq!(scene.camera_for(8, 6, 11), key(1));
        assert_ne!(scene.camera_for(8, 6, 5), key(0));
        assert_ne!(scene.camera_for(8, 6, 5), key(1));
    }

    #[test]
    fn tiles_compose_into_the_same_frame() {
        let scene = Scene::new(&small_scene());
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
