//! The guest's host side: store state, the memory limiter, fixed clocks, seeded randomness and
//! the WASI functions this sandbox replaces.

use std::path::PathBuf;
use std::time::{Duration, Instant};
use wasmtime::{Caller, Extern, Linker, ResourceLimiter};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock};

const WASI: &str = "wasi_snapshot_preview1";
// WASI preview 1 errno values.
const ERRNO_FAULT: i32 = 21;
const ERRNO_INVAL: i32 = 28;
const ERRNO_NOTSUP: i32 = 58;

/// Fuel charged per `poll_oneoff` subscription: sleeping returns at once, so the loop around it
/// pays instead of the wall clock.
pub const POLL_FUEL_PER_SUBSCRIPTION: u64 = 10_000;
const MAX_SUBSCRIPTIONS: u32 = 4096;

pub struct State {
    pub wasi: WasiP1Ctx,
    pub limiter: Limiter,
    pub out: OutWatch,
}

/// Watches the size of `/out` while the guest runs. wasmtime-wasi has no per-directory quota
/// and its write functions cannot be wrapped (they need the calling instance's memory), so the
/// epoch callback measures `/out` every [`OUT_CHECK_INTERVAL`]: a guest cannot fill the
/// provider's disk before the run ends and `/out` is measured for good.
pub struct OutWatch {
    pub dir: PathBuf,
    pub limit_bytes: u64,
    pub exceeded: bool,
    pub next_check: Instant,
}

pub const OUT_CHECK_INTERVAL: Duration = Duration::from_millis(100);

impl OutWatch {
    /// Checks `/out` if it is time; `true` when it holds more than allowed.
    pub fn check(&mut self, now: Instant) -> bool {
        if now < self.next_check {
            return false;
        }
        self.next_check = now + OUT_CHECK_INTERVAL;
        if crate::outputs::apparent_size_exceeds(&self.dir, self.limit_bytes) {
            self.exceeded = true;
        }
        self.exceeded
    }
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

/// The wall clock reads 2000-01-01T00:00:00Z forever.
pub struct FixedWall;

impl HostWallClock for FixedWall {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::from_secs(crate::outputs::FIXED_EPOCH_SECS)
    }
}

/// The monotonic clock never moves: elapsed time is not a function of the unit.
pub struct FixedMono;

impl HostMonotonicClock for FixedMono {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
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

impl rand::TryRng for SeededRandom {
    type Error = std::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0u8; 4];
        self.0.fill(&mut b);
        Ok(u32::from_le_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0u8; 8];
        self.0.fill(&mut b);
        Ok(u64::from_le_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        self.0.fill(dst);
        Ok(())
    }
}

/// Replaces the WASI functions that would let a guest outlast its deadline or reserve disk
/// without writing. Must be called after the WASI functions were added.
pub fn add_shadows(linker: &mut Linker<State>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    linker.func_wrap(WASI, "poll_oneoff", poll_oneoff)?;
    linker.func_wrap(
        WASI,
        "fd_allocate",
        |_: Caller<'_, State>, _fd: i32, _off: i64, _len: i64| -> i32 { ERRNO_NOTSUP },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

fn memory(caller: &mut Caller<'_, State>) -> Option<wasmtime::Memory> {
    match caller.get_export("memory") {
        Some(Extern::Memory(m)) => Some(m),
        _ => None,
    }
}

/// `poll_oneoff` that never blocks: every subscription (clock or fd) is reported ready at once.
/// Clocks are fixed, so a sleep "completes" immediately; a guest that loops on sleeping burns
/// fuel instead of wall time and cannot sleep through its deadline.
fn poll_oneoff(
    mut caller: Caller<'_, State>,
    in_ptr: i32,
    out_ptr: i32,
    nsubs: i32,
    nevents_ptr: i32,
) -> wasmtime::Result<i32> {
    let n = nsubs as u32;
    if n == 0 || n > MAX_SUBSCRIPTIONS {
        return Ok(ERRNO_INVAL);
    }
    let fuel = caller.get_fuel()?;
    caller.set_fuel(fuel.saturating_sub(POLL_FUEL_PER_SUBSCRIPTION * n as u64))?;
    let Some(mem) = memory(&mut caller) else {
        return Ok(ERRNO_FAULT);
    };
    let mut subs = vec![0u8; n as usize * 48];
    if mem
        .read(&caller, in_ptr as u32 as usize, &mut subs)
        .is_err()
    {
        return Ok(ERRNO_FAULT);
    }
    let mut events = vec![0u8; n as usize * 32];
    for (sub, ev) in subs.chunks_exact(48).zip(events.chunks_exact_mut(32)) {
        let tag = sub[8];
        if tag > 2 {
            return Ok(ERRNO_INVAL);
        }
        ev[0..8].copy_from_slice(&sub[0..8]); // userdata
        // error = 0 (bytes 8..10), type = tag, fd_readwrite nbytes = 0, flags = 0.
        ev[10] = tag;
    }
    if mem
        .write(&mut caller, out_ptr as u32 as usize, &events)
        .is_err()
    {
        return Ok(ERRNO_FAULT);
    }
    if mem
        .write(&mut caller, nevents_ptr as u32 as usize, &n.to_le_bytes())
        .is_err()
    {
        return Ok(ERRNO_FAULT);
    }
    Ok(0)
}
