//! Scene description, camera and the path-tracing integrator.

use crate::bvh::{Bvh, Tri};
use crate::math::{Ray, Vec3};
use crate::obj::Mesh;
use exo_guest::Rng;

const MAX_DEPTH: u32 = 8;
const T_MIN: f64 = 1e-4;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Material {
    Diffuse { albedo: Vec3 },
    Metal { albedo: Vec3, fuzz: f64 },
    Glass { ior: f64 },
    Emissive { radiance: Vec3 },
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sphere {
    pub center: Vec3,
    pub radius: f64,
    pub material: Material,
}

#[derive(Clone, Copy, Debug)]
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

#[derive(Clone, Debug)]
pub struct Scene {
    pub spheres: Vec<Sphere>,
    bvh: Bvh,
    mesh_material: Material,
    sky: Vec3,
}

struct Hit {
    t: f64,
    point: Vec3,
    normal: Vec3,
    front: bool,
    material: Material,
}

impl Scene {
    /// The demo scene: the given mesh (the Stanford bunny in the demos) on a floor, a mirror
    /// sphere, a glass sphere, a lamp and a sky. Without a mesh a small pyramid stands in.
    pub fn demo(mesh: Option<Mesh>) -> Scene {
        let mut mesh = mesh.unwrap_or_else(pyramid);
        mesh.fit(1.0, 0.0, 0.0);
        let spheres = vec![
            Sphere {
                center: Vec3::new(0.0, -1000.0, 0.0),
                radius: 1000.0,
                material: Material::Diffuse {
                    albedo: Vec3::new(0.55, 0.55, 0.5),
                },
            },
            Sphere {
                center: Vec3::new(-1.05, 0.4, -0.3),
                radius: 0.4,
                material: Material::Metal {
                    albedo: Vec3::new(0.9, 0.85, 0.8),
                    fuzz: 0.03,
                },
            },
            Sphere {
                center: Vec3::new(0.95, 0.3, 0.35),
                radius: 0.3,
                material: Material::Glass { ior: 1.5 },
            },
            Sphere {
                center: Vec3::new(0.7, 0.12, -0.8),
                radius: 0.12,
                material: Material::Diffuse {
                    albedo: Vec3::new(0.8, 0.2, 0.25),
                },
            },
            Sphere {
                center: Vec3::new(1.5, 3.0, 1.5),
                radius: 0.8,
                material: Material::Emissive {
                    radiance: Vec3::new(7.0, 6.5, 6.0),
                },
            },
        ];
        Scene::new(
            &mesh,
            Material::Diffuse {
                albedo: Vec3::new(0.75, 0.7, 0.62),
            },
            spheres,
            Vec3::new(0.45, 0.55, 0.75),
        )
    }

    pub fn new(mesh: &Mesh, mesh_material: Material, spheres: Vec<Sphere>, sky: Vec3) -> Scene {
        let normals = vertex_normals(mesh);
        let tris = mesh
            .triangles
            .iter()
            .map(|&[a, b, c]| {
                let (a, b, c) = (a as usize, b as usize, c as usize);
                let v0 = mesh.vertices[a];
                Tri {
                    v0,
                    e1: mesh.vertices[b] - v0,
                    e2: mesh.vertices[c] - v0,
                    n: [normals[a], normals[b], normals[c]],
                }
            })
            .collect();
        Scene {
            spheres,
            bvh: Bvh::build(tris),
            mesh_material,
            sky,
        }
    }

    /// The camera of frame `frame`: an orbit of 120 frames around the scene.
    pub fn camera_for(&self, width: u32, height: u32, frame: u32) -> Camera {
        let angle = (frame % 120) as f64 * (std::f64::consts::TAU / 120.0);
        let from = Vec3::new(3.4 * angle.sin(), 1.3, 3.4 * angle.cos());
        Camera::look_at(
            from,
            Vec3::new(0.0, 0.45, 0.0),
            38.0,
            width as f64 / height as f64,
        )
    }

    pub fn trace(&self, mut ray: Ray, rng: &mut Rng) -> Vec3 {
        let mut throughput = Vec3::ONE;
        let mut radiance = Vec3::ZERO;
        for _ in 0..MAX_DEPTH {
            let Some(hit) = self.hit(&ray) else {
                let t = 0.5 * (ray.dir.y + 1.0);
                let sky = Vec3::ONE * (1.0 - t) + self.sky * t;
                radiance += throughput.mul_elem(sky * 0.6);
                break;
            };
            let (dir, attenuation) = match hit.material {
                Material::Emissive { radiance: e } => {
                    radiance += throughput.mul_elem(e);
                    break;
                }
                Material::Diffuse { albedo } => {
                    let d = hit.normal + random_unit(rng);
                    let d = if d.dot(d) < 1e-12 { hit.normal } else { d };
                    (d, albedo)
                }
                Material::Metal { albedo, fuzz } => {
                    let d = ray.dir.reflect(hit.normal) + random_in_sphere(rng) * fuzz;
                    if d.dot(hit.normal) <= 0.0 {
                        break;
                    }
                    (d, albedo)
                }
                Material::Glass { ior } => {
                    let ratio = if hit.front { 1.0 / ior } else { ior };
                    let cos = (-ray.dir).dot(hit.normal).min(1.0);
                    let sin2 = 1.0 - cos * cos;
                    let d = if ratio * ratio * sin2 > 1.0 || schlick(cos, ratio) > rng.next_f64() {
                        ray.dir.reflect(hit.normal)
                    } else {
                        let perp = (ray.dir + hit.normal * cos) * ratio;
                        let par = hit.normal * -(1.0 - perp.dot(perp)).abs().sqrt();
                        perp + par
                    };
                    (d, Vec3::ONE)
                }
            };
            throughput = throughput.mul_elem(attenuation);
            ray = Ray {
                origin: hit.point,
                dir: dir.normalized(),
            };
            let _ = hit.t;
        }
        radiance
    }

    fn hit(&self, ray: &Ray) -> Option<Hit> {
        let mut best: Option<Hit> = None;
        let mut t_max = f64::INFINITY;
        for s in &self.spheres {
            if let Some(t) = hit_sphere(s, ray, T_MIN, t_max) {
                t_max = t;
                let point = ray.at(t);
                let outward = (point - s.center) / s.radius;
                best = Some(face(ray, t, point, outward, s.material));
            }
        }
        if let Some(h) = self.bvh.intersect(ray, T_MIN, t_max) {
            let tri = &self.bvh.tris[h.tri as usize];
            let w = 1.0 - h.u - h.v;
            let smooth = (tri.n[0] * w + tri.n[1] * h.u + tri.n[2] * h.v).normalized();
            let geometric = tri.e1.cross(tri.e2).normalized();
            let n = if smooth.dot(smooth) > 0.0 {
                smooth
            } else {
                geometric
            };
            best = Some(face(ray, h.t, ray.at(h.t), n, self.mesh_material));
        }
        best
    }
}

fn face(ray: &Ray, t: f64, point: Vec3, outward: Vec3, material: Material) -> Hit {
    let front = ray.dir.dot(outward) < 0.0;
    let normal = if front { outward } else { -outward };
    Hit {
        t,
        point,
        normal,
        front,
        material,
    }
}

fn hit_sphere(s: &Sphere, ray: &Ray, t_min: f64, t_max: f64) -> Option<f64> {
    let oc = ray.origin - s.center;
    let half_b = oc.dot(ray.dir);
    let c = oc.dot(oc) - s.radius * s.radius;
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

fn random_unit(rng: &mut Rng) -> Vec3 {
    random_in_sphere(rng).normalized()
}

fn vertex_normals(mesh: &Mesh) -> Vec<Vec3> {
    let mut normals = vec![Vec3::ZERO; mesh.vertices.len()];
    for &[a, b, c] in &mesh.triangles {
        let (a, b, c) = (a as usize, b as usize, c as usize);
        // Area-weighted: the unnormalised cross product.
        let n = (mesh.vertices[b] - mesh.vertices[a]).cross(mesh.vertices[c] - mesh.vertices[a]);
        normals[a] += n;
        normals[b] += n;
        normals[c] += n;
    }
    normals.into_iter().map(Vec3::normalized).collect()
}

fn pyramid() -> Mesh {
    Mesh {
        vertices: vec![
            Vec3::new(-0.5, 0.0, -0.5),
            Vec3::new(0.5, 0.0, -0.5),
            Vec3::new(0.5, 0.0, 0.5),
            Vec3::new(-0.5, 0.0, 0.5),
            Vec3::new(0.0, 1.0, 0.0),
        ],
        triangles: vec![
            [0, 1, 4],
            [1, 2, 4],
            [2, 3, 4],
            [3, 0, 4],
            [0, 2, 1],
            [0, 3, 2],
        ],
    }
}
