//! A bounding volume hierarchy over triangles: median split on the widest centroid axis, leaves of
//! at most `LEAF_SIZE` triangles, flattened into an array and walked with a fixed-size stack.

use crate::math::{Ray, Vec3};

const LEAF_SIZE: usize = 4;
/// Enough for any tree this builder makes: median splits give depth about log2(n / LEAF_SIZE).
const STACK: usize = 64;

#[derive(Clone, Copy, Debug)]
pub struct Tri {
    pub v0: Vec3,
    pub e1: Vec3,
    pub e2: Vec3,
    /// Vertex normals, for smooth shading.
    pub n: [Vec3; 3],
    /// Index into the scene's materials.
    pub material: u32,
}

#[derive(Clone, Copy, Debug)]
struct Node {
    lo: Vec3,
    hi: Vec3,
    /// For a leaf, the first triangle; otherwise the index of the right child (the left child is
    /// the next node).
    index: u32,
    count: u32,
}

#[derive(Clone, Debug, Default)]
pub struct Bvh {
    nodes: Vec<Node>,
    pub tris: Vec<Tri>,
}

/// Closest triangle hit: distance, triangle, barycentrics.
#[derive(Clone, Copy, Debug)]
pub struct TriHit {
    pub t: f64,
    pub tri: u32,
    pub u: f64,
    pub v: f64,
}

impl Bvh {
    pub fn build(mut tris: Vec<Tri>) -> Bvh {
        let mut nodes = Vec::with_capacity(tris.len() / LEAF_SIZE * 2 + 1);
        if !tris.is_empty() {
            let n = tris.len();
            build_node(&mut tris, 0, n, &mut nodes, 0);
        }
        Bvh { nodes, tris }
    }

    pub fn intersect(&self, ray: &Ray, t_min: f64, mut t_max: f64) -> Option<TriHit> {
        if self.nodes.is_empty() {
            return None;
        }
        let inv = Vec3::new(1.0 / ray.dir.x, 1.0 / ray.dir.y, 1.0 / ray.dir.z);
        let mut stack = [0u32; STACK];
        let mut sp = 1;
        let mut best = None;
        while sp > 0 {
            sp -= 1;
            let idx = stack[sp];
            let node = &self.nodes[idx as usize];
            if !hit_box(node.lo, node.hi, ray, inv, t_min, t_max) {
                continue;
            }
            if node.count > 0 {
                let first = node.index as usize;
                for (i, tri) in self.tris[first..first + node.count as usize]
                    .iter()
                    .enumerate()
                {
                    if let Some((t, u, v)) = hit_tri(tri, ray, t_min, t_max) {
                        t_max = t;
                        best = Some(TriHit {
                            t,
                            tri: (first + i) as u32,
                            u,
                            v,
                        });
                    }
                }
            } else if sp + 2 <= STACK {
                // The left child is the next node; it is popped first.
                stack[sp] = node.index;
                stack[sp + 1] = idx + 1;
                sp += 2;
            }
        }
        best
    }
}

fn build_node(
    tris: &mut [Tri],
    start: usize,
    end: usize,
    nodes: &mut Vec<Node>,
    depth: usize,
) -> u32 {
    let me = nodes.len();
    let (mut lo, mut hi) = (
        Vec3::new(f64::MAX, f64::MAX, f64::MAX),
        Vec3::new(f64::MIN, f64::MIN, f64::MIN),
    );
    let (mut clo, mut chi) = (lo, hi);
    for t in &tris[start..end] {
        let (a, b, c) = (t.v0, t.v0 + t.e1, t.v0 + t.e2);
        lo = lo.min(a).min(b).min(c);
        hi = hi.max(a).max(b).max(c);
        let centroid = centroid(t);
        clo = clo.min(centroid);
        chi = chi.max(centroid);
    }
    nodes.push(Node {
        lo,
        hi,
        index: start as u32,
        count: (end - start) as u32,
    });
    if end - start <= LEAF_SIZE || depth + 2 >= STACK {
        return me as u32;
    }
    let ext = chi - clo;
    let axis = if ext.x >= ext.y && ext.x >= ext.z {
        0
    } else if ext.y >= ext.z {
        1
    } else {
        2
    };
    // A total order (ties broken by the original position through a stable sort) keeps the tree,
    // and so the traversal order, identical on every machine.
    tris[start..end].sort_by(|a, b| centroid(a).axis(axis).total_cmp(&centroid(b).axis(axis)));
    let mid = start + (end - start) / 2;
    build_node(tris, start, mid, nodes, depth + 1);
    let right = build_node(tris, mid, end, nodes, depth + 1);
    nodes[me].index = right;
    nodes[me].count = 0;
    me as u32
}

fn centroid(t: &Tri) -> Vec3 {
    t.v0 + (t.e1 + t.e2) * (1.0 / 3.0)
}

fn hit_box(lo: Vec3, hi: Vec3, ray: &Ray, inv: Vec3, mut t0: f64, mut t1: f64) -> bool {
    for a in 0..3 {
        let o = ray.origin.axis(a);
        let i = inv.axis(a);
        let mut ta = (lo.axis(a) - o) * i;
        let mut tb = (hi.axis(a) - o) * i;
        if i < 0.0 {
            std::mem::swap(&mut ta, &mut tb);
        }
        // Written so that a NaN (0 * inf) leaves the interval unchanged instead of closing it.
        if ta > t0 {
            t0 = ta;
        }
        if tb < t1 {
            t1 = tb;
        }
        if t1 < t0 {
            return false;
        }
    }
    true
}

/// Möller–Trumbore.
fn hit_tri(tri: &Tri, ray: &Ray, t_min: f64, t_max: f64) -> Option<(f64, f64, f64)> {
    let p = ray.dir.cross(tri.e2);
    let det = tri.e1.dot(p);
    if det.abs() < 1e-12 {
        return None;
    }
    let inv_det = 1.0 / det;
    let s = ray.origin - tri.v0;
    let u = s.dot(p) * inv_det;
    if !(0.0..=1.0).contains(&u) {
        return None;
    }
    let q = s.cross(tri.e1);
    let v = ray.dir.dot(q) * inv_det;
    if v < 0.0 || u + v > 1.0 {
        return None;
    }
    let t = tri.e2.dot(q) * inv_det;
    (t > t_min && t < t_max).then_some((t, u, v))
}
