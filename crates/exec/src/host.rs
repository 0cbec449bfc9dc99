//! The guest's host side: store state, the memory limiter and seeded randomness. The WASI
//! functions themselves are in [`crate::wasi_p1`], the filesystem in [`crate::vfs`].

use crate::vfs::Vfs;
use wasmtime::ResourceLimiter;

pub struct State {
    /// `/in`, `/out`, stdio and the descriptor table.
    pub vfs: Vfs,
    pub limiter: Limiter,
    /// `argv`, starting with the program name.
    pub args: Vec<String>,
    /// `KEY=value` strings.
    pub env: Vec<String>,
    /// What `random_get` returns.
    pub random: SeededRandom,
}

/// Enforces the unit's memory limit and remembers whether it refused anything: wasmtime's own
/// `StoreLimits` cannot say afterwards, and a refused growth is not a trap.
pub struct Limiter {
    pub limit_bytes: usize,
    pub peak_bytes: usize,
    pub denied: bool,
}

pub const MAX_TABLE_ELEMENTS: usize = 1 << 20;

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit_bytes {
            self.denied = true;
            return Ok(false);
        }
        self.peak_bytes = self.peak_bytes.max(desired);
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        // The pool slot could not grow: from the guest's side the same as a refusal.
        self.denied = true;
        Ok(())
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        4
    }

    fn tables(&self) -> usize {
        4
    }

    fn memories(&self) -> usize {
        1
    }
}

/// Randomness for the guest: the BLAKE3 output stream keyed by the unit's seed and index.
pub struct SeededRandom(blake3::OutputReader);

impl SeededRandom {
    pub fn new(seed: u64, unit_index: u64, stream: &str) -> Self {
        let mut h = blake3::Hasher::new_derive_key("exodus exec guest randomness v1");
        h.update(stream.as_bytes());
        h.update(&seed.to_le_bytes());
        h.update(&unit_index.to_le_bytes());
        SeededRandom(h.finalize_xof())
    }
}

impl SeededRandom {
    pub fn fill(&mut self, dst: &mut [u8]) {
        self.0.fill(dst);
    }
}
