use std::ops::{Add, AddAssign, Div, Mul, Neg, Sub};

/// `a.min(b)` as a comparison, for an `a` that is never NaN: the same value for every `b` (a
/// NaN `b` gives `a`), up to the sign of a zero when `a` and `b` are zeros of both signs.
///
/// `f64::min` and `f64::max` are IEEE `minNum` and `maxNum`, which WebAssembly has no
/// instruction for: in the sandbox each is a call to libm's `fmin` or `fmax`, where a comparison
/// is one `minsd` or `maxsd` there as natively.
pub fn smaller(a: f64, b: f64) -> f64 {
    if b < a { b } else { a }
}

/// `a.max(b)` as a comparison, for an `a` that is never NaN: see [`smaller`].
pub fn larger(a: f64, b: f64) -> f64 {
    if b > a { b } else { a }
}

#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct Vec3 {
    pub x: f64,
    pub y: f64,
    pub z: f64,
}

impl Vec3 {
    pub const ZERO: Vec3 = Vec3::new(0.0, 0.0, 0.0);
    pub const ONE: Vec3 = Vec3::new(1.0, 1.0, 1.0);

    pub const fn new(x: f64, y: f64, z: f64) -> Self {
        Vec3 { x, y, z }
    }
    pub fn dot(self, o: Vec3) -> f64 {
        self.x * o.x + self.y * o.y + self.z * o.z
    }
    pub fn cross(self, o: Vec3) -> Vec3 {
        Vec3::new(
            self.y * o.z - self.z * o.y,
            self.z * o.x - self.x * o.z,
            self.x * o.y - self.y * o.x,
        )
    }
    pub fn length(self) -> f64 {
        self.dot(self).sqrt()
    }
    pub fn normalized(self) -> Vec3 {
        let l = self.length();
        if l > 0.0 { self / l } else { self }
    }
    pub fn mul_elem(self, o: Vec3) -> Vec3 {
        Vec3::new(self.x * o.x, self.y * o.y, self.z * o.z)
    }
    /// Lane-wise [`smaller`]: for coordinates, which are never NaN.
    pub fn min(self, o: Vec3) -> Vec3 {
        Vec3::new(
            smaller(self.x, o.x),
            smaller(self.y, o.y),
            smaller(self.z, o.z),
        )
    }
    /// Lane-wise [`larger`]: for coordinates, which are never NaN.
    pub fn max(self, o: Vec3) -> Vec3 {
        Vec3::new(
            larger(self.x, o.x),
            larger(self.y, o.y),
            larger(self.z, o.z),
        )
    }
    pub fn axis(self, a: usize) -> f64 {
        match a {
            0 => self.x,
            1 => self.y,
            _ => self.z,
        }
    }
    pub fn max_component(self) -> f64 {
        self.x.max(self.y).max(self.z)
    }
    pub fn reflect(self, n: Vec3) -> Vec3 {
        self - n * (2.0 * self.dot(n))
    }
}

impl Add for Vec3 {
    type Output = Vec3;
    fn add(self, o: Vec3) -> Vec3 {
        Vec3::new(self.x + o.x, self.y + o.y, self.z + o.z)
    }
}
impl AddAssign for Vec3 {
    fn add_assign(&mut self, o: Vec3) {
        *self = *self + o;
    }
}
impl Sub for Vec3 {
    type Output = Vec3;
    fn sub(self, o: Vec3) -> Vec3 {
        Vec3::new(self.x - o.x, self.y - o.y, self.z - o.z)
    }
}
impl Mul<f64> for Vec3 {
    type Output = Vec3;
    fn mul(self, s: f64) -> Vec3 {
        Vec3::new(self.x * s, self.y * s, self.z * s)
    }
}
impl Div<f64> for Vec3 {
    type Output = Vec3;
    fn div(self, s: f64) -> Vec3 {
        Vec3::new(self.x / s, self.y / s, self.z / s)
    }
}
impl Neg for Vec3 {
    type Output = Vec3;
    fn neg(self) -> Vec3 {
        Vec3::new(-self.x, -self.y, -self.z)
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Ray {
    pub origin: Vec3,
    pub dir: Vec3,
}

impl Ray {
    pub fn at(&self, t: f64) -> Vec3 {
        self.origin + self.dir * t
    }
}
