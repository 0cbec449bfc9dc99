//! The scene a tile is rendered from, the camera path, and the path-tracing integrator: next-event
//! estimation (a shadow ray towards one light at every diffuse bounce) combined with the
//! BSDF-sampled paths by multiple importance sampling with the power heuristic (Veach 1997,
//! chapter 9), so that small bright lights converge at low sample counts.
//!
//! Only IEEE basic operations and square roots are used while tracing: their results are the same
//! on every machine, natively and in wasm.

use crate::bvh::{Bvh, Tri};
use crate::canonical::{CameraKey, Light, Material, SceneDesc};
use crate::math::{Ray, Vec3, larger, smaller};
use exo_guest::Rng;

const MAX_DEPTH: u32 = 8;
const T_MIN: f64 = 1e-4;
const INV_PI: f64 = 1.0 / std::f64::consts::PI;

/// How paths find the lights. [`Lighting::NextEvent`] is what providers run; the other exists to
/// measure what light sampling buys (`docs/render.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lighting {
    /// Light reaches a path only when a bounce happens to hit it.
    PathOnly,
    /// Lights sampled directly at every diffuse bounce, weighted against BSDF hits by MIS.
    NextEvent,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Camera {
    origin: Vec3,
    lower_left: Vec3,
    horizontal: Vec3,
    vertical: Vec3,
}

impl Camera {
    pub fn look_at(from: Vec3, at: Vec3, vfov_deg: f64, aspect: f64) -> Camera {
        let h = (vfov_deg.to_radians() / 2.0).tan();
        let (vh, vw) = (2.0 * h, 2.0 * h * aspect);
        let w = (from - at).normalized();
        let u = Vec3::new(0.0, 1.0, 0.0).cross(w).normalized();
        let v = w.cross(u);
        let horizontal = u * vw;
        let vertical = v * vh;
        Camera {
            origin: from,
            lower_left: from - horizontal * 0.5 - vertical * 0.5 - w,
            horizontal,
            vertical,
        }
    }

    pub fn ray(&self, s: f64, t: f64) -> Ray {
        let dir = self.lower_left + self.horizontal * s + self.vertical * t - self.origin;
        Ray {
            origin: self.origin,
            dir: dir.normalized(),
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Sphere {
    center: Vec3,
    radius: f64,
    material: Material,
}

#[derive(Clone, Debug)]
pub struct Scene {
    spheres: Vec<Sphere>,
    lights: Vec<Light>,
    bvh: Bvh,
    materials: Vec<Material>,
    horizon: Vec3,
    zenith: Vec3,
    camera: Vec<CameraKey>,
    pub exposure: f64,
    pub lighting: Lighting,
}

/// What a ray hit: a light (by index) or a surface.
enum Surface {
    Light(usize),
    Material(Material),
}

struct Hit {
    point: Vec3,
    normal: Vec3,
    front: bool,
    surface: Surface,
}

impl Scene {
    /// Builds the scene from a validated description (every index in range).
    pub fn new(desc: &SceneDesc) -> Scene {
        let material = |i: u32| desc.materials[i as usize];
        let tris = desc
            .meshes
            .iter()
            .flat_map(|mesh| {
                let normals = vertex_normals(&mesh.vertices, &mesh.triangles);
                mesh.triangles.iter().map(move |&[a, b, c]| {
                    let (a, b, c) = (a as usize, b as usize, c as usize);
                    let v0 = mesh.vertices[a];
                    Tri {
                        v0,
                        e1: mesh.vertices[b] - v0,
                        e2: mesh.vertices[c] - v0,
                        n: [normals[a], normals[b], normals[c]],
                        material: mesh.material,
                    }
                })
            })
            .collect();
        Scene {
            spheres: desc
                .spheres
                .iter()
                .map(|s| Sphere {
                    center: s.center,
                    radius: s.radius,
                    material: material(s.material),
                })
                .collect(),
            lights: desc.lights.clone(),
            bvh: Bvh::build(tris),
            materials: desc.materials.clone(),
            horizon: desc.horizon,
            zenith: desc.zenith,
            camera: desc.camera.clone(),
            exposure: desc.exposure,
            lighting: Lighting::NextEvent,
        }
    }

    /// The camera of `frame`: its key, or a Catmull-Rom spline through the keys around it (the
    /// path passes through every key with a continuous velocity); before the first key and after
    /// the last the camera holds still.
    pub fn camera_for(&self, width: u32, height: u32, frame: u32) -> Camera {
        let keys = &self.camera;
        let next = keys.partition_point(|k| k.frame <= frame);
        let aspect = width as f64 / height as f64;
        let key = |i: usize| keys[i.min(keys.len() - 1)];
        if next == 0 || next == keys.len() {
            let k = key(next.saturating_sub(1));
            return Camera::look_at(k.from, k.at, k.vfov_deg, aspect);
        }
        let (k1, k2) = (key(next - 1), key(next));
        let k0 = key(next.saturating_sub(2));
        let k3 = key(next + 1);
        let t = (frame - k1.frame) as f64 / (k2.frame - k1.frame) as f64;
        let from = catmull_rom(k0.from, k1.from, k2.from, k3.from, t);
        let at = catmull_rom(k0.at, k1.at, k2.at, k3.at, t);
        let vfov = k1.vfov_deg + (k2.vfov_deg - k1.vfov_deg) * t;
        // A spline between valid keys can still pass through a degenerate pose; fall back to the
        // key's direction then.
        let w = from - at;
        if w.x == 0.0 && w.z == 0.0 {
            return Camera::look_at(k1.from, k1.at, k1.vfov_deg, aspect);
        }
        Camera::look_at(from, at, vfov, aspect)
    }

    /// Radiance along `ray`, in linear units.
    pub fn trace(&self, mut ray: Ray, rng: &mut Rng) -> Vec3 {
        let nee = self.lighting == Lighting::NextEvent && !self.lights.is_empty();
        let mut throughput = Vec3::ONE;
        let mut radiance = Vec3::ZERO;
        // The point and solid-angle density of the last diffuse bounce; `None` after the camera
        // or a specular bounce, whose paths light sampling cannot produce.
        let mut diffuse_from: Option<(Vec3, f64)> = None;
        for _ in 0..MAX_DEPTH {
            let Some(hit) = self.hit(&ray, f64::INFINITY) else {
                radiance += throughput.mul_elem(self.sky(ray.dir));
                break;
            };
            let material = match hit.surface {
                Surface::Light(i) => {
                    let weight = match diffuse_from {
                        Some((from, bsdf_pdf)) if nee => {
                            power_heuristic(bsdf_pdf, self.light_pdf(i, from))
                        }
                        _ => 1.0,
                    };
                    if hit.front {
                        radiance += throughput.mul_elem(self.lights[i].radiance) * weight;
                    }
                    break;
                }
                Surface::Material(m) => m,
            };
            let (dir, attenuation) = match material {
                Material::Emissive { radiance: e } => {
                    radiance += throughput.mul_elem(e);
                    break;
                }
                Material::Diffuse { albedo } => {
                    if nee {
                        radiance += throughput.mul_elem(self.direct(&hit, albedo, rng));
                    }
                    let d = cosine_direction(hit.normal, rng);
                    diffuse_from = Some((hit.point, d.dot(hit.normal) * INV_PI));
                    (d, albedo)
                }
                Material::Metal { albedo, fuzz } => {
                    let d = ray.dir.reflect(hit.normal) + random_in_sphere(rng) * fuzz;
                    if d.dot(hit.normal) <= 0.0 {
                        break;
                    }
                    diffuse_from = None;
                    (d.normalized(), albedo)
                }
                Material::Glass { ior } => {
                    diffuse_from = None;
                    (refract_or_reflect(&ray, &hit, ior, rng), Vec3::ONE)
                }
            };
            throughput = throughput.mul_elem(attenuation);
            ray = Ray {
                origin: hit.point,
                dir,
            };
        }
        radiance
    }

    /// Light arriving at a diffuse point straight from one light chosen uniformly, sampled
    /// within the cone the light's sphere subtends, weighted by MIS against the BSDF's own
    /// sampling of the same direction.
    fn direct(&self, hit: &Hit, albedo: Vec3, rng: &mut Rng) -> Vec3 {
        let n = self.lights.len();
        let i = rng.below(n as u64) as usize;
        let light = &self.lights[i];
        let Some(cone) = Cone::towards(light, hit.point) else {
            return Vec3::ZERO;
        };
        let dir = cone.sample(rng);
        let cos = dir.dot(hit.normal);
        if cos <= 0.0 {
            return Vec3::ZERO;
        }
        let shadow = Ray {
            origin: hit.point,
            dir,
        };
        let Some(t_light) = hit_sphere(light.center, light.radius, &shadow, T_MIN, f64::INFINITY)
        else {
            return Vec3::ZERO;
        };
        if self.occluded(&shadow, t_light) {
            return Vec3::ZERO;
        }
        let light_pdf = cone.pdf() / n as f64;
        let bsdf_pdf = cos * INV_PI;
        let weight = power_heuristic(light_pdf, bsdf_pdf);
        light.radiance.mul_elem(albedo) * (INV_PI * cos * weight / light_pdf)
    }

    /// The density with which [`Scene::direct`] picks the direction from `from` to light `i`.
    fn light_pdf(&self, i: usize, from: Vec3) -> f64 {
        Cone::towards(&self.lights[i], from).map_or(0.0, |c| c.pdf() / self.lights.len() as f64)
    }

    fn sky(&self, dir: Vec3) -> Vec3 {
        let t = 0.5 * (dir.y + 1.0);
        self.horizon * (1.0 - t) + self.zenith * t
    }

    /// Whether anything, another light included, lies on the ray before the sampled light at
    /// `t_light`.
    fn occluded(&self, ray: &Ray, t_light: f64) -> bool {
        self.hit(ray, t_light * (1.0 - 1e-9)).is_some()
    }

    fn hit(&self, ray: &Ray, mut t_max: f64) -> Option<Hit> {
        let mut best: Option<Hit> = None;
        for (i, l) in self.lights.iter().enumerate() {
            if let Some(t) = hit_sphere(l.center, l.radius, ray, T_MIN, t_max) {
                t_max = t;
                let point = ray.at(t);
                best = Some(face(
                    ray,
                    point,
                    (point - l.center) / l.radius,
                    Surface::Light(i),
                ));
            }
        }
        for s in &self.spheres {
            if let Some(t) = hit_sphere(s.center, s.radius, ray, T_MIN, t_max) {
                t_max = t;
                let point = ray.at(t);
                let outward = (point - s.center) / s.radius;
                best = Some(face(ray, point, outward, Surface::Material(s.material)));
            }
        }
        if let Some(h) = self.bvh.intersect(ray, T_MIN, t_max) {
            let tri = &self.bvh.tris[h.tri as usize];
            let w = 1.0 - h.u - h.v;
            let smooth = (tri.n[0] * w + tri.n[1] * h.u + tri.n[2] * h.v).normalized();
            let n = if smooth.dot(smooth) > 0.0 {
                smooth
            } else {
                tri.e1.cross(tri.e2).normalized()
            };
            let material = self.materials[tri.material as usize];
            best = Some(face(ray, ray.at(h.t), n, Surface::Material(material)));
        }
        best
    }
}

/// The cone of directions from a point towards a spherical light.
struct Cone {
    axis: Vec3,
    cos_max: f64,
}

impl Cone {
    /// `None` from inside the light, which then is not sampled.
    fn towards(light: &Light, from: Vec3) -> Option<Cone> {
        let to = light.center - from;
        let d2 = to.dot(to);
        let r2 = light.radius * light.radius;
        if d2 <= r2 {
            return None;
        }
        Some(Cone {
            axis: to / d2.sqrt(),
            cos_max: larger(0.0, 1.0 - r2 / d2).sqrt(),
        })
    }

    /// Uniform density over the cone's solid angle.
    fn pdf(&self) -> f64 {
        INV_PI / larger(1e-300, 2.0 * (1.0 - self.cos_max))
    }

    fn sample(&self, rng: &mut Rng) -> Vec3 {
        let cos = 1.0 - rng.next_f64() * (1.0 - self.cos_max);
        let sin = larger(0.0, 1.0 - cos * cos).sqrt();
        let (c, s) = random_angle(rng);
        let (u, v) = basis(self.axis);
        (u * (c * sin) + v * (s * sin) + self.axis * cos).normalized()
    }
}

fn power_heuristic(chosen: f64, other: f64) -> f64 {
    let (a, b) = (chosen * chosen, other * other);
    if a + b > 0.0 { a / (a + b) } else { 0.0 }
}

fn catmull_rom(p0: Vec3, p1: Vec3, p2: Vec3, p3: Vec3, t: f64) -> Vec3 {
    let (t2, t3) = (t * t, t * t * t);
    (p1 * 2.0
        + (p2 - p0) * t
        + (p0 * 2.0 - p1 * 5.0 + p2 * 4.0 - p3) * t2
        + (p1 * 3.0 - p0 - p2 * 3.0 + p3) * t3)
        * 0.5
}

/// Two unit vectors completing `n` to an orthonormal basis (Duff et al. 2017).
fn basis(n: Vec3) -> (Vec3, Vec3) {
    let sign = if n.z >= 0.0 { 1.0 } else { -1.0 };
    let a = -1.0 / (sign + n.z);
    let b = n.x * n.y * a;
    (
        Vec3::new(1.0 + sign * n.x * n.x * a, sign * b, -sign * n.x),
        Vec3::new(b, sign + n.y * n.y * a, -n.y),
    )
}

/// The cosine and sine of a uniformly random angle, by rejection from the unit disc: no
/// transcendental functions, whose last bits differ between maths libraries.
fn random_angle(rng: &mut Rng) -> (f64, f64) {
    loop {
        let (x, y) = (rng.next_f64() * 2.0 - 1.0, rng.next_f64() * 2.0 - 1.0);
        let r2 = x * x + y * y;
        if r2 < 1.0 && r2 > 1e-12 {
            let r = r2.sqrt();
            return (x / r, y / r);
        }
    }
}

/// A direction with density cos/π about `normal`: a point on the unit sphere around the normal's
/// tip.
fn cosine_direction(normal: Vec3, rng: &mut Rng) -> Vec3 {
    let d = normal + random_in_sphere(rng).normalized();
    let d = d.normalized();
    if d.dot(normal) > 1e-9 { d } else { normal }
}

fn refract_or_reflect(ray: &Ray, hit: &Hit, ior: f64, rng: &mut Rng) -> Vec3 {
    let ratio = if hit.front { 1.0 / ior } else { ior };
    let cos = smaller(1.0, (-ray.dir).dot(hit.normal));
    let sin2 = 1.0 - cos * cos;
    let d = if ratio * ratio * sin2 > 1.0 || schlick(cos, ratio) > rng.next_f64() {
        ray.dir.reflect(hit.normal)
    } else {
        let perp = (ray.dir + hit.normal * cos) * ratio;
        let par = hit.normal * -(1.0 - perp.dot(perp)).abs().sqrt();
        perp + par
    };
    d.normalized()
}

fn face(ray: &Ray, point: Vec3, outward: Vec3, surface: Surface) -> Hit {
    let front = ray.dir.dot(outward) < 0.0;
    let normal = if front { outward } else { -outward };
    Hit {
        point,
        normal,
        front,
        surface,
    }
}

fn hit_sphere(center: Vec3, radius: f64, ray: &Ray, t_min: f64, t_max: f64) -> Option<f64> {
    let oc = ray.origin - center;
    let half_b = oc.dot(ray.dir);
    let c = oc.dot(oc) - radius * radius;
    let disc = half_b * half_b - c;
    if disc < 0.0 {
        return None;
    }
    let sq = disc.sqrt();
    let near = -half_b - sq;
    if near > t_min && near < t_max {
        return Some(near);
    }
    let far = -half_b + sq;
    (far > t_min && far < t_max).then_some(far)
}

fn schlick(cos: f64, ratio: f64) -> f64 {
    let r0 = ((1.0 - ratio) / (1.0 + ratio)).powi(2);
    let m = 1.0 - cos;
    r0 + (1.0 - r0) * m * m * m * m * m
}

/// Rejection sampling: no transcendental functions, so no libm differences between builds.
fn random_in_sphere(rng: &mut Rng) -> Vec3 {
    loop {
        let p = Vec3::new(
            rng.next_f64() * 2.0 - 1.0,
            rng.next_f64() * 2.0 - 1.0,
            rng.next_f64() * 2.0 - 1.0,
        );
        let l2 = p.dot(p);
        if l2 < 1.0 && l2 > 1e-12 {
            return p;
        }
    }
}

fn vertex_normals(vertices: &[Vec3], triangles: &[[u32; 3]]) -> Vec<Vec3> {
    let mut normals = vec![Vec3::ZERO; vertices.len()];
    for &[a, b, c] in triangles {
        let (a, b, c) = (a as usize, b as usize, c as usize);
        // Area-weighted: the unnormalised cross product.
        let n = (vertices[b] - vertices[a]).cross(vertices[c] - vertices[a]);
        normals[a] += n;
        normals[b] += n;
        normals[c] += n;
    }
    normals.into_iter().map(Vec3::normalized).collect()
}
