//! A bounded Wavefront OBJ reader: vertices (`v`) and faces (`f`, polygons fanned into
//! triangles, `v/vt/vn` forms and negative indices accepted). Everything else is ignored.

use crate::math::Vec3;

/// Bounds on what one mesh may hold, so a hostile file cannot exhaust memory before fuel runs out.
pub const MAX_VERTICES: usize = 2_000_000;
pub const MAX_TRIANGLES: usize = 4_000_000;

#[derive(Clone, Debug, Default)]
pub struct Mesh {
    pub vertices: Vec<Vec3>,
    pub triangles: Vec<[u32; 3]>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjError {
    pub line: usize,
    pub reason: String,
}

impl std::fmt::Display for ObjError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "obj line {}: {}", self.line, self.reason)
    }
}

impl std::error::Error for ObjError {}

pub fn parse_obj(text: &str) -> Result<Mesh, ObjError> {
    let mut mesh = Mesh::default();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let err = |reason: String| ObjError { line, reason };
        let mut parts = raw.split_whitespace();
        match parts.next() {
            Some("v") => {
                let mut c = [0.0f64; 3];
                for slot in &mut c {
                    let s = parts
                        .next()
                        .ok_or_else(|| err("vertex needs 3 coordinates".into()))?;
                    let v: f64 = s
                        .parse()
                        .map_err(|_| err(format!("bad coordinate {s:?}")))?;
                    if !v.is_finite() {
                        return Err(err("coordinate is not finite".into()));
                    }
                    *slot = v;
                }
                if mesh.vertices.len() >= MAX_VERTICES {
                    return Err(err("too many vertices".into()));
                }
                mesh.vertices.push(Vec3::new(c[0], c[1], c[2]));
            }
            Some("f") => {
                let mut idx = Vec::with_capacity(4);
                for p in parts {
                    let first = p.split('/').next().unwrap_or("");
                    let n: i64 = first.parse().map_err(|_| err(format!("bad index {p:?}")))?;
                    let count = mesh.vertices.len() as i64;
                    let resolved = if n > 0 { n - 1 } else { count + n };
                    if n == 0 || resolved < 0 || resolved >= count {
                        return Err(err(format!("index {n} out of range")));
                    }
                    idx.push(resolved as u32);
                }
                if idx.len() < 3 {
                    return Err(err("face needs at least 3 vertices".into()));
                }
                for k in 1..idx.len() - 1 {
                    if mesh.triangles.len() >= MAX_TRIANGLES {
                        return Err(err("too many triangles".into()));
                    }
                    mesh.triangles.push([idx[0], idx[k], idx[k + 1]]);
                }
            }
            _ => {}
        }
    }
    Ok(mesh)
}

impl Mesh {
    /// Bounding box as (min, max); `None` for an empty mesh.
    pub fn bounds(&self) -> Option<(Vec3, Vec3)> {
        let first = *self.vertices.first()?;
        Some(
            self.vertices
                .iter()
                .fold((first, first), |(lo, hi), &v| (lo.min(v), hi.max(v))),
        )
    }

    /// Scales and moves the mesh so that it is `height` tall, stands on y = 0 and is centred at
    /// (`x`, `z`).
    pub fn fit(&mut self, height: f64, x: f64, z: f64) {
        let Some((lo, hi)) = self.bounds() else {
            return;
        };
        let extent = (hi - lo).max_component();
        if extent <= 0.0 {
            return;
        }
        let s = height / (hi.y - lo.y).max(extent * 1e-3);
        let c = (lo + hi) * 0.5;
        for v in &mut self.vertices {
            *v = Vec3::new((v.x - c.x) * s + x, (v.y - lo.y) * s, (v.z - c.z) * s + z);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_triangulates() {
        let m = parse_obj("# c\nv 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nf 1 2 3 4\nf -1 -2/5 -3//7\n")
            .unwrap();
        assert_eq!(m.vertices.len(), 4);
        assert_eq!(m.triangles, vec![[0, 1, 2], [0, 2, 3], [3, 2, 1]]);
    }

    #[test]
    fn rejects_bad_input() {
        assert!(parse_obj("v 0 0\n").is_err());
        assert!(parse_obj("v 0 0 0\nf 1 2 3\n").is_err());
        assert!(parse_obj("v 0 0 nan\n").is_err());
        assert_eq!(parse_obj("v 1 x 0\n").unwrap_err().line, 1);
    }
}
