//! Scene files: what a studio writes (TOML naming OBJ meshes with their MTL materials, a camera
//! path, lights), compiled on the requester's machine into the canonical scene every provider
//! reads ([`exo_app_render::canonical`]). All parsing happens here, once, so two providers can
//! never read one scene differently.
//!
//! The format is documented in `apps/render/README.md`. Files are read through a caller-given
//! function, so that this crate does no I/O and the caller bounds each file's size.

use exo_app_render::{
    CameraKey, Light, MAX_SAMPLES, MAX_SIDE, Material, MeshDesc, SceneDesc, SphereDesc, Vec3,
};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Largest scene file.
pub const MAX_SCENE_FILE_BYTES: usize = 1 << 20;
/// Largest OBJ or MTL file.
pub const MAX_MESH_FILE_BYTES: usize = 64 << 20;

/// Why a scene file cannot be rendered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SceneError {
    #[error("scene file: {0}")]
    Syntax(String),
    #[error("{file}: {reason}")]
    File { file: String, reason: String },
    #[error("{0}")]
    Invalid(String),
}

/// A compiled scene: the canonical bytes providers read, and the image settings the job plan
/// needs.
#[derive(Clone, Debug, PartialEq)]
pub struct CompiledScene {
    pub desc: SceneDesc,
    pub canonical: Vec<u8>,
    pub width: u32,
    pub height: u32,
    pub samples: u32,
    /// What the scene asked for that the renderer ignores (textures, for example).
    pub warnings: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    image: Image,
    #[serde(default)]
    sky: Sky,
    camera: Vec<Key>,
    #[serde(default)]
    material: Vec<MaterialSpec>,
    #[serde(default)]
    mesh: Vec<MeshSpec>,
    #[serde(default)]
    sphere: Vec<SphereSpec>,
    #[serde(default)]
    light: Vec<LightSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Image {
    width: u32,
    height: u32,
    samples: u32,
    #[serde(default = "one")]
    exposure: f64,
}

fn one() -> f64 {
    1.0
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Sky {
    horizon: [f64; 3],
    zenith: [f64; 3],
}

impl Default for Sky {
    fn default() -> Self {
        Sky {
            horizon: [0.0; 3],
            zenith: [0.0; 3],
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Key {
    frame: u32,
    from: [f64; 3],
    at: [f64; 3],
    fov: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MaterialSpec {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    color: Option<[f64; 3]>,
    fuzz: Option<f64>,
    ior: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MeshSpec {
    obj: String,
    /// Overrides the OBJ's own (MTL) materials.
    material: Option<String>,
    /// Fit: scale to this height, bottom centre at `position`.
    height: Option<f64>,
    scale: Option<f64>,
    #[serde(default)]
    position: [f64; 3],
    #[serde(default)]
    rotate_y: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SphereSpec {
    center: [f64; 3],
    radius: f64,
    material: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LightSpec {
    center: [f64; 3],
    radius: f64,
    color: [f64; 3],
}

fn v3(a: [f64; 3]) -> Vec3 {
    Vec3::new(a[0], a[1], a[2])
}

/// Compiles the scene file `text`. `read(path)` returns the bytes of a file the scene names, by
/// its path relative to the scene file (an MTL named by an OBJ is relative to that OBJ).
pub fn compile(
    text: &str,
    read: &dyn Fn(&Path) -> Result<Vec<u8>, String>,
) -> Result<CompiledScene, SceneError> {
    if text.len() > MAX_SCENE_FILE_BYTES {
        return Err(SceneError::Invalid(format!(
            "the scene file is {} bytes, at most {MAX_SCENE_FILE_BYTES}",
            text.len()
        )));
    }
    let file: File = toml::from_str(text).map_err(|e| SceneError::Syntax(e.message().into()))?;
    check_image(&file.image)?;
    let mut builder = Builder::default();
    for m in &file.material {
        let material = named_material(m)?;
        if builder
            .names
            .insert(m.name.clone(), builder.materials.len() as u32)
            .is_some()
        {
            return Err(SceneError::Invalid(format!(
                "material {:?} is defined twice",
                m.name
            )));
        }
        builder.materials.push(material);
    }
    for mesh in &file.mesh {
        builder.mesh(mesh, read)?;
    }
    let spheres = file
        .sphere
        .iter()
        .map(|s| {
            Ok(SphereDesc {
                center: v3(s.center),
                radius: s.radius,
                material: builder.named(&s.material, "a sphere")?,
            })
        })
        .collect::<Result<_, SceneError>>()?;
    let desc = SceneDesc {
        exposure: file.image.exposure,
        horizon: v3(file.sky.horizon),
        zenith: v3(file.sky.zenith),
        materials: builder.materials,
        meshes: builder.meshes,
        spheres,
        lights: file
            .light
            .iter()
            .map(|l| Light {
                center: v3(l.center),
                radius: l.radius,
                radiance: v3(l.color),
            })
            .collect(),
        camera: file
            .camera
            .iter()
            .map(|k| CameraKey {
                frame: k.frame,
                from: v3(k.from),
                at: v3(k.at),
                vfov_deg: k.fov,
            })
            .collect(),
    };
    let canonical = desc.encode().map_err(SceneError::Invalid)?;
    Ok(CompiledScene {
        desc,
        canonical,
        width: file.image.width,
        height: file.image.height,
        samples: file.image.samples,
        warnings: builder.warnings,
    })
}

fn check_image(image: &Image) -> Result<(), SceneError> {
    let side = 1..=MAX_SIDE;
    if !side.contains(&image.width) || !side.contains(&image.height) {
        return Err(SceneError::Invalid(format!(
            "image {}x{}: each side must be 1 to {MAX_SIDE}",
            image.width, image.height
        )));
    }
    if image.width as u64 * image.height as u64 > super::MAX_PIXELS {
        return Err(SceneError::Invalid(format!(
            "image {}x{} has more than {} pixels",
            image.width,
            image.height,
            super::MAX_PIXELS
        )));
    }
    if !(1..=MAX_SAMPLES).contains(&image.samples) {
        return Err(SceneError::Invalid(format!(
            "samples {} must be 1 to {MAX_SAMPLES}",
            image.samples
        )));
    }
    Ok(())
}

fn named_material(m: &MaterialSpec) -> Result<Material, SceneError> {
    let need = |field: Option<[f64; 3]>| {
        field
            .map(v3)
            .ok_or_else(|| SceneError::Invalid(format!("material {:?} needs a color", m.name)))
    };
    Ok(match m.kind.as_str() {
        "diffuse" => Material::Diffuse {
            albedo: need(m.color)?,
        },
        "metal" => Material::Metal {
            albedo: need(m.color)?,
            fuzz: m.fuzz.unwrap_or(0.0),
        },
        "glass" => Material::Glass {
            ior: m.ior.unwrap_or(1.5),
        },
        "emissive" => Material::Emissive {
            radiance: need(m.color)?,
        },
        other => {
            return Err(SceneError::Invalid(format!(
                "material {:?}: type {other:?} is not diffuse, metal, glass or emissive",
                m.name
            )));
        }
    })
}

#[derive(Default)]
struct Builder {
    materials: Vec<Material>,
    names: BTreeMap<String, u32>,
    meshes: Vec<MeshDesc>,
    warnings: Vec<String>,
}

impl Builder {
    fn named(&self, name: &str, user: &str) -> Result<u32, SceneError> {
        self.names.get(name).copied().ok_or_else(|| {
            SceneError::Invalid(format!(
                "{user} names material {name:?}, which is not defined"
            ))
        })
    }

    /// Adds an OBJ's models as meshes, placed as the scene says, each with its override or its
    /// MTL material.
    fn mesh(
        &mut self,
        spec: &MeshSpec,
        read: &dyn Fn(&Path) -> Result<Vec<u8>, String>,
    ) -> Result<(), SceneError> {
        let file_error = |reason: String| SceneError::File {
            file: spec.obj.clone(),
            reason,
        };
        let obj_path = PathBuf::from(&spec.obj);
        let bytes = read(&obj_path).map_err(file_error)?;
        let dir = obj_path.parent().map(Path::to_path_buf).unwrap_or_default();
        let options = tobj::LoadOptions {
            triangulate: true,
            ignore_points: true,
            ignore_lines: true,
            ..Default::default()
        };
        let (models, mtl) = tobj::load_obj_buf(&mut bytes.as_slice(), &options, |mtl| {
            let path = dir.join(mtl);
            let bytes = read(&path).map_err(|_| tobj::LoadError::OpenFileFailed)?;
            tobj::load_mtl_buf(&mut bytes.as_slice())
        })
        .map_err(|e| file_error(e.to_string()))?;
        let mtl = match (&spec.material, mtl) {
            (Some(_), _) => Vec::new(),
            (None, Ok(m)) => m,
            (None, Err(e)) => return Err(file_error(format!("its MTL: {e}"))),
        };
        let override_index = spec
            .material
            .as_deref()
            .map(|name| self.named(name, &format!("mesh {:?}", spec.obj)))
            .transpose()?;
        let mtl_indices = self.add_mtl(&spec.obj, &mtl);
        let place = Placement::new(spec, &models).map_err(file_error)?;
        for model in models {
            let material = match (override_index, model.mesh.material_id) {
                (Some(i), _) => i,
                (None, Some(id)) => *mtl_indices.get(id).ok_or_else(|| {
                    file_error(format!("model {:?} names a missing material", model.name))
                })?,
                (None, None) => {
                    return Err(file_error(format!(
                        "model {:?} has no material: give the mesh a material = \"...\"",
                        model.name
                    )));
                }
            };
            let vertices = model
                .mesh
                .positions
                .chunks_exact(3)
                .map(|p| place.apply(Vec3::new(p[0], p[1], p[2])))
                .collect();
            let triangles = model
                .mesh
                .indices
                .chunks_exact(3)
                .map(|t| [t[0], t[1], t[2]])
                .collect();
            if self.meshes.len() >= exo_app_render::canonical::MAX_MESHES {
                return Err(SceneError::Invalid(format!(
                    "more than {} meshes (OBJ objects and groups count one each)",
                    exo_app_render::canonical::MAX_MESHES
                )));
            }
            self.meshes.push(MeshDesc {
                material,
                vertices,
                triangles,
            });
        }
        Ok(())
    }

    /// Turns MTL materials into canonical ones (see the render README for the mapping) and
    /// returns their indices.
    fn add_mtl(&mut self, obj: &str, mtl: &[tobj::Material]) -> Vec<u32> {
        let mut indices = Vec::with_capacity(mtl.len());
        for m in mtl {
            if m.diffuse_texture.is_some() || m.normal_texture.is_some() {
                self.warnings.push(format!(
                    "{obj}: material {:?} has textures, which the renderer ignores",
                    m.name
                ));
            }
            indices.push(self.materials.len() as u32);
            self.materials.push(mtl_material(m));
        }
        indices
    }
}

/// MTL to canonical: emission (`Ke`) makes an emitter; transparency (`d` < 1 or illum 4, 6, 7,
/// 9) makes glass with index `Ni`; reflection (illum 3, 5, 8) makes metal coloured by `Ks`,
/// rougher as `Ns` falls; everything else is diffuse with `Kd`. Colours are clamped to what the
/// renderer accepts.
fn mtl_material(m: &tobj::Material) -> Material {
    let clamp = |c: [f64; 3]| {
        Vec3::new(
            c[0].clamp(0.0, 1.0),
            c[1].clamp(0.0, 1.0),
            c[2].clamp(0.0, 1.0),
        )
    };
    let illum = m.illumination_model.unwrap_or(2);
    if let Some(e) = m.emissive.filter(|e| e.iter().any(|&c| c > 0.0)) {
        return Material::Emissive { radiance: v3(e) };
    }
    if m.dissolve.is_some_and(|d| d < 1.0) || matches!(illum, 4 | 6 | 7 | 9) {
        return Material::Glass {
            ior: m.optical_density.unwrap_or(1.5).clamp(1.0, 4.0),
        };
    }
    if matches!(illum, 3 | 5 | 8) {
        return Material::Metal {
            albedo: clamp(m.specular.or(m.diffuse).unwrap_or([0.9; 3])),
            fuzz: (1.0 - m.shininess.unwrap_or(1000.0) / 1000.0).clamp(0.0, 1.0),
        };
    }
    Material::Diffuse {
        albedo: clamp(m.diffuse.unwrap_or([0.8; 3])),
    }
}

/// Where an OBJ goes: with `height`, scaled to that height with its bottom centre at
/// `position`; otherwise scaled by `scale` (default 1) about the origin and moved by
/// `position`. Either way turned by `rotate_y` degrees about the vertical axis first.
struct Placement {
    origin: Vec3,
    scale: f64,
    cos: f64,
    sin: f64,
    position: Vec3,
}

impl Placement {
    fn new(spec: &MeshSpec, models: &[tobj::Model]) -> Result<Placement, String> {
        let (lo, hi) = models
            .iter()
            .flat_map(|m| m.mesh.positions.chunks_exact(3))
            .map(|p| Vec3::new(p[0], p[1], p[2]))
            .fold(None, |acc: Option<(Vec3, Vec3)>, v| {
                Some(acc.map_or((v, v), |(lo, hi)| (lo.min(v), hi.max(v))))
            })
            .ok_or("the OBJ has no vertices")?;
        let angle = spec.rotate_y.to_radians();
        let (origin, scale) = match (spec.height, spec.scale) {
            (Some(_), Some(_)) => return Err("give height or scale, not both".into()),
            (Some(h), None) => {
                let tall = hi.y - lo.y;
                if !tall.is_finite() || tall <= 0.0 {
                    return Err("the mesh is flat, so it cannot be fitted to a height".into());
                }
                let bottom_centre = Vec3::new((lo.x + hi.x) / 2.0, lo.y, (lo.z + hi.z) / 2.0);
                (bottom_centre, h / tall)
            }
            (None, s) => (Vec3::ZERO, s.unwrap_or(1.0)),
        };
        if !(scale.is_finite() && scale > 0.0 && angle.is_finite()) {
            return Err(format!(
                "scale {scale} and rotate_y must be finite and the scale positive"
            ));
        }
        Ok(Placement {
            origin,
            scale,
            cos: angle.cos(),
            sin: angle.sin(),
            position: v3(spec.position),
        })
    }

    fn apply(&self, v: Vec3) -> Vec3 {
        let p = (v - self.origin) * self.scale;
        Vec3::new(
            p.x * self.cos + p.z * self.sin,
            p.y,
            -p.x * self.sin + p.z * self.cos,
        ) + self.position
    }
}
