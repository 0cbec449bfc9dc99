//! The canonical scene: the only scene description a provider ever reads (`/in/scene.bin`).
//!
//! Requesters write scenes in friendlier formats (a TOML scene file naming OBJ and MTL files);
//! their side turns them into these bytes, so that no parsing difference between OBJ readers,
//! float parsers or versions can reach the providers: every provider decodes the same
//! little-endian `f64` bit patterns. The decoder bounds every count before it allocates and
//! refuses non-finite numbers and dangling indices, so a hostile file fails with a message
//! instead of exhausting the sandbox.
//!
//! Layout (all integers `u32`, all reals `f64`, little-endian): `MAGIC`, then
//! `exposure`, sky `horizon` and `zenith` (3 reals each); materials (count, then per material a
//! tag byte and its reals); meshes (count, then per mesh its material index, vertex count,
//! vertices, triangle count, triangles as 3 vertex indices); spheres (count, then centre,
//! radius, material index); lights (count, then centre, radius, radiance); camera keys (count,
//! then frame, from, at, vertical field of view in degrees).

use crate::math::Vec3;

/// Format name and version; a change of layout is a new version.
pub const MAGIC: &[u8; 8] = b"EXOSCN01";
pub const MAX_MATERIALS: usize = 256;
pub const MAX_MESHES: usize = 64;
/// Summed over all meshes. Each triangle costs about 200 bytes of guest memory with its BVH.
pub const MAX_VERTICES: usize = 500_000;
pub const MAX_TRIANGLES: usize = 500_000;
pub const MAX_SPHERES: usize = 256;
/// Lights are sampled at every diffuse bounce; a handful is what studio scenes use.
pub const MAX_LIGHTS: usize = 16;
pub const MAX_CAMERA_KEYS: usize = 1_024;
/// Largest absolute coordinate: far beyond any scene, small enough that squared distances stay
/// finite.
pub const MAX_COORDINATE: f64 = 1e9;
/// Largest radiance of a light or emissive material.
pub const MAX_RADIANCE: f64 = 1e6;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Material {
    Diffuse { albedo: Vec3 },
    Metal { albedo: Vec3, fuzz: f64 },
    Glass { ior: f64 },
    Emissive { radiance: Vec3 },
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct MeshDesc {
    pub material: u32,
    pub vertices: Vec<Vec3>,
    pub triangles: Vec<[u32; 3]>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SphereDesc {
    pub center: Vec3,
    pub radius: f64,
    pub material: u32,
}

/// A spherical area light: seen by camera rays and sampled directly at every diffuse bounce.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Light {
    pub center: Vec3,
    pub radius: f64,
    pub radiance: Vec3,
}

/// Where the camera is at `frame`; frames between keys are interpolated.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CameraKey {
    pub frame: u32,
    pub from: Vec3,
    pub at: Vec3,
    pub vfov_deg: f64,
}

/// A whole scene, as providers see it.
#[derive(Clone, Debug, PartialEq)]
pub struct SceneDesc {
    /// Linear scale applied before tone mapping.
    pub exposure: f64,
    pub horizon: Vec3,
    pub zenith: Vec3,
    pub materials: Vec<Material>,
    pub meshes: Vec<MeshDesc>,
    pub spheres: Vec<SphereDesc>,
    pub lights: Vec<Light>,
    pub camera: Vec<CameraKey>,
}

const TAG_DIFFUSE: u8 = 0;
const TAG_METAL: u8 = 1;
const TAG_GLASS: u8 = 2;
const TAG_EMISSIVE: u8 = 3;

impl SceneDesc {
    /// Checks every bound and reference; [`SceneDesc::encode`] and [`SceneDesc::decode`] both
    /// call it, so what one side writes the other side accepts.
    pub fn validate(&self) -> Result<(), String> {
        positive("exposure", self.exposure, MAX_RADIANCE)?;
        colour("sky horizon", self.horizon, MAX_RADIANCE)?;
        colour("sky zenith", self.zenith, MAX_RADIANCE)?;
        at_most("materials", self.materials.len(), MAX_MATERIALS)?;
        for (i, m) in self.materials.iter().enumerate() {
            material(m).map_err(|e| format!("material {i}: {e}"))?;
        }
        at_most("meshes", self.meshes.len(), MAX_MESHES)?;
        let vertices: usize = self.meshes.iter().map(|m| m.vertices.len()).sum();
        let triangles: usize = self.meshes.iter().map(|m| m.triangles.len()).sum();
        at_most("vertices (all meshes)", vertices, MAX_VERTICES)?;
        at_most("triangles (all meshes)", triangles, MAX_TRIANGLES)?;
        for (i, mesh) in self.meshes.iter().enumerate() {
            self.mesh(mesh).map_err(|e| format!("mesh {i}: {e}"))?;
        }
        at_most("spheres", self.spheres.len(), MAX_SPHERES)?;
        for (i, s) in self.spheres.iter().enumerate() {
            point("centre", s.center).map_err(|e| format!("sphere {i}: {e}"))?;
            positive("radius", s.radius, MAX_COORDINATE).map_err(|e| format!("sphere {i}: {e}"))?;
            self.material_index(s.material)
                .map_err(|e| format!("sphere {i}: {e}"))?;
        }
        at_most("lights", self.lights.len(), MAX_LIGHTS)?;
        for (i, l) in self.lights.iter().enumerate() {
            point("centre", l.center).map_err(|e| format!("light {i}: {e}"))?;
            positive("radius", l.radius, MAX_COORDINATE).map_err(|e| format!("light {i}: {e}"))?;
            colour("radiance", l.radiance, MAX_RADIANCE).map_err(|e| format!("light {i}: {e}"))?;
        }
        self.camera_keys()
    }

    fn mesh(&self, mesh: &MeshDesc) -> Result<(), String> {
        self.material_index(mesh.material)?;
        for v in &mesh.vertices {
            point("vertex", *v)?;
        }
        let n = mesh.vertices.len();
        if let Some(t) = mesh
            .triangles
            .iter()
            .find(|t| t.iter().any(|&i| i as usize >= n))
        {
            return Err(format!("triangle {t:?} names a vertex beyond its {n}"));
        }
        Ok(())
    }

    fn material_index(&self, index: u32) -> Result<(), String> {
        if index as usize >= self.materials.len() {
            return Err(format!(
                "material {index} does not exist ({} materials)",
                self.materials.len()
            ));
        }
        Ok(())
    }

    fn camera_keys(&self) -> Result<(), String> {
        if self.camera.is_empty() {
            return Err("the camera needs at least one key".into());
        }
        at_most("camera keys", self.camera.len(), MAX_CAMERA_KEYS)?;
        for (i, k) in self.camera.iter().enumerate() {
            let bad = |e: String| format!("camera key {i}: {e}");
            point("from", k.from).map_err(bad)?;
            point("at", k.at).map_err(bad)?;
            if !(k.vfov_deg > 0.0 && k.vfov_deg < 180.0) {
                return Err(bad(format!(
                    "field of view {} is not in (0, 180)",
                    k.vfov_deg
                )));
            }
            let w = k.from - k.at;
            if w.dot(w) <= 0.0 {
                return Err(bad("the camera looks at its own position".into()));
            }
            if w.x == 0.0 && w.z == 0.0 {
                return Err(bad("the camera looks straight up or down".into()));
            }
        }
        if self.camera.windows(2).any(|w| w[0].frame >= w[1].frame) {
            return Err("camera keys must be in increasing frame order".into());
        }
        Ok(())
    }

    /// The canonical bytes, after [`SceneDesc::validate`].
    pub fn encode(&self) -> Result<Vec<u8>, String> {
        self.validate()?;
        let mut w = Writer(MAGIC.to_vec());
        w.real(self.exposure);
        w.vec(self.horizon);
        w.vec(self.zenith);
        w.count(self.materials.len());
        for m in &self.materials {
            match *m {
                Material::Diffuse { albedo } => {
                    w.0.push(TAG_DIFFUSE);
                    w.vec(albedo);
                }
                Material::Metal { albedo, fuzz } => {
                    w.0.push(TAG_METAL);
                    w.vec(albedo);
                    w.real(fuzz);
                }
                Material::Glass { ior } => {
                    w.0.push(TAG_GLASS);
                    w.real(ior);
                }
                Material::Emissive { radiance } => {
                    w.0.push(TAG_EMISSIVE);
                    w.vec(radiance);
                }
            }
        }
        w.count(self.meshes.len());
        for mesh in &self.meshes {
            w.u32(mesh.material);
            w.count(mesh.vertices.len());
            mesh.vertices.iter().for_each(|v| w.vec(*v));
            w.count(mesh.triangles.len());
            mesh.triangles.iter().flatten().for_each(|i| w.u32(*i));
        }
        w.count(self.spheres.len());
        for s in &self.spheres {
            w.vec(s.center);
            w.real(s.radius);
            w.u32(s.material);
        }
        w.count(self.lights.len());
        for l in &self.lights {
            w.vec(l.center);
            w.real(l.radius);
            w.vec(l.radiance);
        }
        w.count(self.camera.len());
        for k in &self.camera {
            w.u32(k.frame);
            w.vec(k.from);
            w.vec(k.at);
            w.real(k.vfov_deg);
        }
        Ok(w.0)
    }

    /// Decodes and validates canonical bytes; trailing bytes are refused.
    pub fn decode(bytes: &[u8]) -> Result<SceneDesc, String> {
        let mut r = Reader { bytes, pos: 0 };
        if r.take(MAGIC.len())? != MAGIC {
            return Err("not a canonical scene (bad magic or version)".into());
        }
        let exposure = r.real()?;
        let (horizon, zenith) = (r.vec()?, r.vec()?);
        let n = r.count("materials", MAX_MATERIALS)?;
        let materials = (0..n).map(|_| r.material()).collect::<Result<_, _>>()?;
        let n = r.count("meshes", MAX_MESHES)?;
        let mut meshes = Vec::with_capacity(n);
        let (mut vertices, mut triangles) = (MAX_VERTICES, MAX_TRIANGLES);
        for _ in 0..n {
            let material = r.u32()?;
            let nv = r.count("vertices (all meshes)", vertices)?;
            vertices -= nv;
            let verts = (0..nv).map(|_| r.vec()).collect::<Result<_, _>>()?;
            let nt = r.count("triangles (all meshes)", triangles)?;
            triangles -= nt;
            let tris = (0..nt)
                .map(|_| Ok([r.u32()?, r.u32()?, r.u32()?]))
                .collect::<Result<_, String>>()?;
            meshes.push(MeshDesc {
                material,
                vertices: verts,
                triangles: tris,
            });
        }
        let n = r.count("spheres", MAX_SPHERES)?;
        let spheres = (0..n)
            .map(|_| {
                Ok(SphereDesc {
                    center: r.vec()?,
                    radius: r.real()?,
                    material: r.u32()?,
                })
            })
            .collect::<Result<_, String>>()?;
        let n = r.count("lights", MAX_LIGHTS)?;
        let lights = (0..n)
            .map(|_| {
                Ok(Light {
                    center: r.vec()?,
                    radius: r.real()?,
                    radiance: r.vec()?,
                })
            })
            .collect::<Result<_, String>>()?;
        let n = r.count("camera keys", MAX_CAMERA_KEYS)?;
        let camera = (0..n)
            .map(|_| {
                Ok(CameraKey {
                    frame: r.u32()?,
                    from: r.vec()?,
                    at: r.vec()?,
                    vfov_deg: r.real()?,
                })
            })
            .collect::<Result<_, String>>()?;
        if r.pos != bytes.len() {
            return Err(format!("{} bytes after the scene", bytes.len() - r.pos));
        }
        let desc = SceneDesc {
            exposure,
            horizon,
            zenith,
            materials,
            meshes,
            spheres,
            lights,
            camera,
        };
        desc.validate()?;
        Ok(desc)
    }
}

fn at_most(what: &str, n: usize, max: usize) -> Result<(), String> {
    if n > max {
        return Err(format!("{n} {what}, at most {max} allowed"));
    }
    Ok(())
}

fn point(what: &str, v: Vec3) -> Result<(), String> {
    let ok = [v.x, v.y, v.z].iter().all(|c| c.abs() <= MAX_COORDINATE);
    if !ok {
        return Err(format!(
            "{what} {v:?} is not finite or beyond ±{MAX_COORDINATE:e}"
        ));
    }
    Ok(())
}

fn positive(what: &str, x: f64, max: f64) -> Result<(), String> {
    if !(x > 0.0 && x <= max) {
        return Err(format!("{what} {x} is not in (0, {max:e}]"));
    }
    Ok(())
}

fn colour(what: &str, c: Vec3, max: f64) -> Result<(), String> {
    let ok = [c.x, c.y, c.z].iter().all(|x| (0.0..=max).contains(x));
    if !ok {
        return Err(format!("{what} {c:?} is not in [0, {max:e}]"));
    }
    Ok(())
}

fn material(m: &Material) -> Result<(), String> {
    match *m {
        Material::Diffuse { albedo } => colour("albedo", albedo, 1.0),
        Material::Metal { albedo, fuzz } => {
            colour("albedo", albedo, 1.0)?;
            if !(0.0..=1.0).contains(&fuzz) {
                return Err(format!("fuzz {fuzz} is not in [0, 1]"));
            }
            Ok(())
        }
        Material::Glass { ior } => {
            if !(1.0..=4.0).contains(&ior) {
                return Err(format!("index of refraction {ior} is not in [1, 4]"));
            }
            Ok(())
        }
        Material::Emissive { radiance } => colour("radiance", radiance, MAX_RADIANCE),
    }
}

struct Writer(Vec<u8>);

impl Writer {
    fn u32(&mut self, x: u32) {
        self.0.extend_from_slice(&x.to_le_bytes());
    }
    /// Counts were bounded by `validate`, far below `u32::MAX`.
    fn count(&mut self, n: usize) {
        self.u32(n as u32);
    }
    fn real(&mut self, x: f64) {
        self.0.extend_from_slice(&x.to_le_bytes());
    }
    fn vec(&mut self, v: Vec3) {
        self.real(v.x);
        self.real(v.y);
        self.real(v.z);
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| format!("the scene ends early, at byte {}", self.bytes.len()))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn count(&mut self, what: &str, max: usize) -> Result<usize, String> {
        let n = self.u32()? as usize;
        at_most(what, n, max)?;
        Ok(n)
    }
    fn real(&mut self) -> Result<f64, String> {
        let x = f64::from_le_bytes(self.array()?);
        if !x.is_finite() {
            return Err(format!("a number at byte {} is not finite", self.pos - 8));
        }
        Ok(x)
    }
    fn vec(&mut self) -> Result<Vec3, String> {
        Ok(Vec3::new(self.real()?, self.real()?, self.real()?))
    }
    fn material(&mut self) -> Result<Material, String> {
        let [tag] = self.array()?;
        Ok(match tag {
            TAG_DIFFUSE => Material::Diffuse {
                albedo: self.vec()?,
            },
            TAG_METAL => Material::Metal {
                albedo: self.vec()?,
                fuzz: self.real()?,
            },
            TAG_GLASS => Material::Glass { ior: self.real()? },
            TAG_EMISSIVE => Material::Emissive {
                radiance: self.vec()?,
            },
            other => return Err(format!("unknown material tag {other}")),
        })
    }
}
