//! `wasi_snapshot_preview1`, all 46 functions, written for this sandbox: the ABI glue between a
//! guest's linear memory and [`crate::vfs`], the fixed clocks, the seeded randomness and the
//! fuel that host work costs.
//!
//! wasmtime-wasi 48 serves preview 1's filesystem from the host's directories through cap-std,
//! with no trait to put another tree behind it, so it would leak host timestamps, inode numbers,
//! listing order and errno choices, and it has no quota. Defining every function here means each
//! call a `wasm32-wasip1` guest can make has one answer chosen by this crate.
//!
//! Fuel: every call costs [`HOST_CALL_FUEL`], and every byte a call moves between the guest and
//! the host (file and stdio reads and writes, listings, random bytes, arguments) costs
//! [`IO_FUEL_PER_KIB`] per KiB, charged after the call moved them: the call that runs out of
//! fuel still completes, then the run ends with `out_of_fuel`, the same way on every machine.
//! The rates are measured in docs/exec-determinism.md.
//!
//! What this module must never do: read or write guest memory outside the bounds it checked,
//! change anything before the guest's pointers were checked, or answer from host state.

use crate::host::State;
use crate::spec::OutputStream;
use crate::vfs::{Errno, Fdstat, Filestat, FsError};
use wasmtime::{Caller, Extern, Linker};

const WASI: &str = "wasi_snapshot_preview1";

/// Fuel every WASI call costs before it does anything: a call takes 125-200 ns of host time in
/// a release build and guest code burns about 6 fuel per ns (docs/exec-determinism.md).
pub const HOST_CALL_FUEL: u64 = 1_000;
/// Fuel per KiB a call moves between guest memory and the host: copying costs 0.025-0.04 ns per
/// byte, rounded up to a quarter of a fuel per byte.
pub const IO_FUEL_PER_KIB: u64 = 256;
/// Fuel per `poll_oneoff` subscription: sleeping returns at once, so the loop around it pays
/// instead of the wall clock.
pub const POLL_FUEL_PER_SUBSCRIPTION: u64 = 10_000;
const MAX_SUBSCRIPTIONS: u32 = 4096;
/// At most this many buffers per vectored read or write (Linux's `IOV_MAX`).
pub const MAX_IOVS: u32 = 1024;

/// The guest wrote more than a quota allows: the run ends as `output_too_large`.
#[derive(Debug)]
pub struct OutputLimit(pub OutputStream);

impl std::fmt::Display for OutputLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} exceeds its bound", self.0)
    }
}

impl std::error::Error for OutputLimit {}

/// The guest called `proc_exit`.
#[derive(Debug)]
pub struct GuestExit(pub i32);

impl std::fmt::Display for GuestExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}", self.0)
    }
}

impl std::error::Error for GuestExit {}

/// The fuel a call that moved `bytes` costs beyond [`HOST_CALL_FUEL`].
pub fn io_fuel(bytes: u64) -> u64 {
    let fuel = u128::from(bytes) * u128::from(IO_FUEL_PER_KIB) / 1024;
    u64::try_from(fuel).unwrap_or(u64::MAX)
}

/// Takes `fuel` from the store, or ends the run as out of fuel.
fn charge(c: &mut Caller<'_, State>, fuel: u64) -> wasmtime::Result<()> {
    let left = c.get_fuel()?;
    if left < fuel {
        c.set_fuel(0)?;
        return Err(wasmtime::Trap::OutOfFuel.into());
    }
    c.set_fuel(left - fuel)
}

/// The guest's linear memory, every access bounds-checked.
struct Mem<'a>(&'a mut [u8]);

impl Mem<'_> {
    fn range(&self, ptr: u32, len: u64) -> Result<std::ops::Range<usize>, Errno> {
        let start = ptr as usize;
        let end = u64::from(ptr)
            .checked_add(len)
            .filter(|e| *e <= self.0.len() as u64)
            .ok_or(Errno::FAULT)?;
        Ok(start..end as usize)
    }

    fn slice(&self, ptr: u32, len: u32) -> Result<&[u8], Errno> {
        let r = self.range(ptr, u64::from(len))?;
        Ok(&self.0[r])
    }

    fn slice_mut(&mut self, ptr: u32, len: u32) -> Result<&mut [u8], Errno> {
        let r = self.range(ptr, u64::from(len))?;
        Ok(&mut self.0[r])
    }

    fn check(&self, ptr: u32, len: u32) -> Result<(), Errno> {
        self.range(ptr, u64::from(len)).map(|_| ())
    }

    fn u32(&self, ptr: u32) -> Result<u32, Errno> {
        let b = self.slice(ptr, 4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn put(&mut self, ptr: u32, bytes: &[u8]) -> Result<(), Errno> {
        self.slice_mut(ptr, bytes.len() as u32)?
            .copy_from_slice(bytes);
        Ok(())
    }

    fn put_u32(&mut self, ptr: u32, v: u32) -> Result<(), Errno> {
        self.put(ptr, &v.to_le_bytes())
    }

    fn put_u64(&mut self, ptr: u32, v: u64) -> Result<(), Errno> {
        self.put(ptr, &v.to_le_bytes())
    }

    /// An `iovec` array: `(buf, len)` pairs, each checked to lie in memory.
    fn iovs(&self, ptr: u32, n: u32) -> Result<Vec<(u32, u32)>, Errno> {
        if n > MAX_IOVS {
            return Err(Errno::INVAL);
        }
        let mut out = Vec::with_capacity(n as usize);
        for i in 0..n {
            let at = ptr.checked_add(i * 8).ok_or(Errno::FAULT)?;
            let (buf, len) = (
                self.u32(at)?,
                self.u32(at.checked_add(4).ok_or(Errno::FAULT)?)?,
            );
            self.check(buf, len)?;
            out.push((buf, len));
        }
        Ok(out)
    }
}

fn total_len(iovs: &[(u32, u32)]) -> Result<u64, Errno> {
    let total: u64 = iovs.iter().map(|(_, l)| u64::from(*l)).sum();
    // A call reports what it moved as a u32.
    if total > u64::from(u32::MAX) {
        return Err(Errno::INVAL);
    }
    Ok(total)
}

/// Why a call stopped short.
enum Stop {
    Errno(Errno),
    TooLarge(OutputStream),
}

impl From<Errno> for Stop {
    fn from(e: Errno) -> Self {
        Stop::Errno(e)
    }
}

impl From<FsError> for Stop {
    fn from(e: FsError) -> Self {
        match e {
            FsError::Errno(e) => Stop::Errno(e),
            FsError::TooLarge(s) => Stop::TooLarge(s),
        }
    }
}

type Body = Result<u64, Stop>;

/// Runs one call: charges its base fee, gives `f` the guest's memory and the store's state, then
/// charges for the bytes `f` says it moved. An errno goes back to the guest; a broken quota or
/// exhausted fuel ends the run.
fn call(
    c: &mut Caller<'_, State>,
    f: impl FnOnce(&mut Mem<'_>, &mut State) -> Body,
) -> wasmtime::Result<i32> {
    charge(c, HOST_CALL_FUEL)?;
    let Some(Extern::Memory(memory)) = c.get_export("memory") else {
        return Ok(i32::from(Errno::FAULT.0));
    };
    let (data, state) = memory.data_and_store_mut(&mut *c);
    let result = f(&mut Mem(data), state);
    match result {
        Ok(bytes) => {
            charge(c, io_fuel(bytes))?;
            Ok(0)
        }
        Err(Stop::Errno(e)) => Ok(i32::from(e.0)),
        Err(Stop::TooLarge(s)) => Err(wasmtime::Error::new(OutputLimit(s))),
    }
}

fn put_filestat(m: &mut Mem<'_>, ptr: u32, st: &Filestat) -> Result<(), Errno> {
    let mut b = [0u8; 64];
    b[0..8].copy_from_slice(&st.dev.to_le_bytes());
    b[8..16].copy_from_slice(&st.ino.to_le_bytes());
    b[16] = st.filetype;
    b[24..32].copy_from_slice(&st.nlink.to_le_bytes());
    b[32..40].copy_from_slice(&st.size.to_le_bytes());
    b[40..48].copy_from_slice(&st.atim_ns.to_le_bytes());
    b[48..56].copy_from_slice(&st.mtim_ns.to_le_bytes());
    b[56..64].copy_from_slice(&st.ctim_ns.to_le_bytes());
    m.put(ptr, &b)
}

fn put_fdstat(m: &mut Mem<'_>, ptr: u32, st: &Fdstat) -> Result<(), Errno> {
    let mut b = [0u8; 24];
    b[0] = st.filetype;
    b[2..4].copy_from_slice(&st.flags.to_le_bytes());
    b[8..16].copy_from_slice(&st.rights_base.to_le_bytes());
    b[16..24].copy_from_slice(&st.rights_inheriting.to_le_bytes());
    m.put(ptr, &b)
}

/// Writes a list of NUL-terminated strings the way `args_get` and `environ_get` do.
fn put_strings(m: &mut Mem<'_>, list: &[String], ptrs: u32, buf: u32) -> Body {
    let size: u64 = list.iter().map(|s| s.len() as u64 + 1).sum();
    m.check(ptrs, (list.len() as u32).saturating_mul(4))?;
    m.check(buf, u32::try_from(size).map_err(|_| Errno::FAULT)?)?;
    let mut at = buf;
    for (i, s) in list.iter().enumerate() {
        m.put_u32(ptrs + i as u32 * 4, at)?;
        m.put(at, s.as_bytes())?;
        m.put(at + s.len() as u32, &[0])?;
        at += s.len() as u32 + 1;
    }
    Ok(size)
}

fn put_sizes(m: &mut Mem<'_>, list: &[String], count: u32, size: u32) -> Body {
    let bytes: u64 = list.iter().map(|s| s.len() as u64 + 1).sum();
    m.check(count, 4)?;
    m.check(size, 4)?;
    m.put_u32(count, list.len() as u32)?;
    m.put_u32(size, u32::try_from(bytes).map_err(|_| Errno::OVERFLOW)?)?;
    Ok(0)
}

fn clock(id: i32) -> Result<(u64, u64), Errno> {
    // (resolution, now) of the two clocks a guest may read; the CPU-time clocks are refused.
    match id {
        0 => Ok((1_000_000_000, crate::vfs::FIXED_TIME_NS)),
        1 => Ok((1_000_000_000, 0)),
        2 | 3 => Err(Errno::BADF),
        _ => Err(Errno::INVAL),
    }
}

type C<'a> = Caller<'a, State>;
type R = wasmtime::Result<i32>;

/// Defines every `wasi_snapshot_preview1` function in `linker`.
pub fn add_to_linker(linker: &mut Linker<State>) -> wasmtime::Result<()> {
    let l = linker;
    l.func_wrap(WASI, "args_get", |mut c: C<'_>, argv: i32, buf: i32| -> R {
        call(&mut c, |m, s| {
            put_strings(m, &s.args, argv as u32, buf as u32)
        })
    })?;
    l.func_wrap(
        WASI,
        "args_sizes_get",
        |mut c: C<'_>, n: i32, size: i32| -> R {
            call(&mut c, |m, s| put_sizes(m, &s.args, n as u32, size as u32))
        },
    )?;
    l.func_wrap(
        WASI,
        "environ_get",
        |mut c: C<'_>, env: i32, buf: i32| -> R {
            call(&mut c, |m, s| {
                put_strings(m, &s.env, env as u32, buf as u32)
            })
        },
    )?;
    l.func_wrap(
        WASI,
        "environ_sizes_get",
        |mut c: C<'_>, n: i32, size: i32| -> R {
            call(&mut c, |m, s| put_sizes(m, &s.env, n as u32, size as u32))
        },
    )?;
    l.func_wrap(
        WASI,
        "clock_res_get",
        |mut c: C<'_>, id: i32, out: i32| -> R {
            call(&mut c, |m, _| {
                m.put_u64(out as u32, clock(id)?.0)?;
                Ok(0)
            })
        },
    )?;
    l.func_wrap(
        WASI,
        "clock_time_get",
        |mut c: C<'_>, id: i32, _precision: i64, out: i32| -> R {
            call(&mut c, |m, _| {
                m.put_u64(out as u32, clock(id)?.1)?;
                Ok(0)
            })
        },
    )?;
    l.func_wrap(
        WASI,
        "fd_advise",
        |mut c: C<'_>, fd: i32, _off: i64, _len: i64, advice: i32| -> R {
            call(&mut c, |_, s| {
                s.vfs.check_open(fd as u32)?;
                if !(0..=5).contains(&advice) {
                    return Err(Errno::INVAL.into());
                }
                Ok(0)
            })
        },
    )?;
    // Reserving space without writing it is refused: it would count against nothing.
    l.func_wrap(
        WASI,
        "fd_allocate",
        |mut c: C<'_>, fd: i32, _off: i64, _len: i64| -> R {
            call(&mut c, |_, s| {
                s.vfs.check_open(fd as u32)?;
                Err(Errno::NOTSUP.into())
            })
        },
    )?;
    l.func_wrap(WASI, "fd_close", |mut c: C<'_>, fd: i32| -> R {
        call(&mut c, |_, s| {
            s.vfs.close(fd as u32)?;
            Ok(0)
        })
    })?;
    for name in ["fd_datasync", "fd_sync"] {
        l.func_wrap(WASI, name, |mut c: C<'_>, fd: i32| -> R {
            call(&mut c, |_, s| {
                s.vfs.check_open(fd as u32)?;
                Ok(0)
            })
        })?;
    }
    l.func_wrap(
        WASI,
        "fd_fdstat_get",
        |mut c: C<'_>, fd: i32, out: i32| -> R {
            call(&mut c, |m, s| {
                let st = s.vfs.fdstat(fd as u32)?;
                put_fdstat(m, out as u32, &st)?;
                Ok(0)
            })
        },
    )?;
    l.func_wrap(
        WASI,
        "fd_fdstat_set_flags",
        |mut c: C<'_>, fd: i32, flags: i32| -> R {
            call(&mut c, |_, s| {
                let flags = u16::try_from(flags).map_err(|_| Errno::INVAL)?;
                s.vfs.set_fdflags(fd as u32, flags)?;
                Ok(0)
            })
        },
    )?;
    l.func_wrap(
        WASI,
        "fd_fdstat_set_rights",
        |mut c: C<'_>, fd: i32, base: i64, inh: i64| -> R {
            call(&mut c, |_, s| {
                s.vfs.set_rights(fd as u32, base as u64, inh as u64)?;
                Ok(0)
            })
        },
    )?;
    l.func_wrap(
        WASI,
        "fd_filestat_get",
        |mut c: C<'_>, fd: i32, out: i32| -> R {
            call(&mut c, |m, s| {
                let st = s.vfs.fd_filestat(fd as u32)?;
                put_filestat(m, out as u32, &st)?;
                Ok(0)
            })
        },
    )?;
    l.func_wrap(
        WASI,
        "fd_filestat_set_size",
        |mut c: C<'_>, fd: i32, size: i64| -> R {
            call(&mut c, |_, s| {
                s.vfs.set_size(fd as u32, size as u64)?;
                Ok(0)
            })
        },
    )?;
    l.func_wrap(
        WASI,
        "fd_filestat_set_times",
        |mut c: C<'_>, fd: i32, atim: i64, mtim: i64, fst: i32| -> R {
            call(&mut c, |_, s| {
                let fst = u16::try_from(fst).map_err(|_| Errno::INVAL)?;
                s.vfs
                    .fd_set_times(fd as u32, atim as u64, mtim as u64, fst)?;
                Ok(0)
            })
        },
    )?;
    l.func_wrap(
        WASI,
        "fd_pread",
        |mut c: C<'_>, fd: i32, iovs: i32, n: i32, off: i64, out: i32| -> R {
            call(&mut c, |m, s| {
                read(m, s, fd, iovs, n, Some(off as u64), out)
            })
        },
    )?;
    l.func_wrap(
        WASI,
        "fd_read",
        |mut c: C<'_>, fd: i32, iovs: i32, n: i32, out: i32| -> R {
            call(&mut c, |m, s| read(m, s, fd, iovs, n, None, out))
        },
    )?;
    l.func_wrap(
        WASI,
        "fd_pwrite",
        |mut c: C<'_>, fd: i32, iovs: i32, n: i32, off: i64, out: i32| -> R {
            call(&mut c, |m, s| {
                write(m, s, fd, iovs, n, Some(off as u64), out)
            })
        },
    )?;
    l.func_wrap(
        WASI,
        "fd_write",
        |mut c: C<'_>, fd: i32, iovs: i32, n: i32, out: i32| -> R {
            call(&mut c, |m, s| write(m, s, fd, iovs, n, None, out))
        },
    )?;
    l.func_wrap(
        WASI,
        "fd_prestat_get",
        |mut c: C<'_>, fd: i32, out: i32| -> R {
            call(&mut c, |m, s| {
                let name = s.vfs.prestat_name(fd as u32)?;
                // Tag 0 (a directory), then the name's length.
                let mut b = [0u8; 8];
                b[4..8].copy_from_slice(&(name.len() as u32).to_le_bytes());
                m.put(out as u32, &b)?;
                Ok(0)
            })
        },
    )?;
    l.func_wrap(
        WASI,
        "fd_prestat_dir_name",
        |mut c: C<'_>, fd: i32, path: i32, len: i32| -> R {
            call(&mut c, |m, s| {
                let name = s.vfs.prestat_name(fd as u32)?;
                if (len as u32 as usize) < name.len() {
                    return Err(Errno::NAMETOOLONG.into());
                }
                m.put(path as u32, name.as_bytes())?;
                Ok(name.len() as u64)
            })
        },
    )?;
    l.func_wrap(
        WASI,
        "fd_readdir",
        |mut c: C<'_>, fd: i32, buf: i32, len: i32, cookie: i64, out: i32| -> R {
            call(&mut c, |m, s| {
                m.check(buf as u32, len as u32)?;
                m.check(out as u32, 4)?;
                let bytes = s
                    .vfs
                    .readdir(fd as u32, cookie as u64, len as u32 as usize)?;
                m.put(buf as u32, &bytes)?;
                m.put_u32(out as u32, bytes.len() as u32)?;
                Ok(bytes.len() as u64)
            })
        },
    )?;
    l.func_wrap(WASI, "fd_renumber", |mut c: C<'_>, fd: i32, to: i32| -> R {
        call(&mut c, |_, s| {
            s.vfs.renumber(fd as u32, to as u32)?;
            Ok(0)
        })
    })?;
    l.func_wrap(
        WASI,
        "fd_seek",
        |mut c: C<'_>, fd: i32, delta: i64, whence: i32, out: i32| -> R {
            call(&mut c, |m, s| {
                m.check(out as u32, 8)?;
                let whence = u8::try_from(whence).map_err(|_| Errno::INVAL)?;
                let pos = s.vfs.seek(fd as u32, delta, whence)?;
                m.put_u64(out as u32, pos)?;
                Ok(0)
            })
        },
    )?;
    l.func_wrap(WASI, "fd_tell", |mut c: C<'_>, fd: i32, out: i32| -> R {
        call(&mut c, |m, s| {
            let pos = s.vfs.tell(fd as u32)?;
            m.put_u64(out as u32, pos)?;
            Ok(0)
        })
    })?;
    l.func_wrap(
        WASI,
        "path_create_directory",
        |mut c: C<'_>, fd: i32, p: i32, pl: i32| -> R {
            call(&mut c, |m, s| {
                s.vfs.create_dir(fd as u32, m.slice(p as u32, pl as u32)?)?;
                Ok(0)
            })
        },
    )?;
    l.func_wrap(
        WASI,
        "path_filestat_get",
        |mut c: C<'_>, fd: i32, _flags: i32, p: i32, pl: i32, out: i32| -> R {
            call(&mut c, |m, s| {
                let st = s
                    .vfs
                    .path_filestat(fd as u32, m.slice(p as u32, pl as u32)?)?;
                put_filestat(m, out as u32, &st)?;
                Ok(0)
            })
        },
    )?;
    l.func_wrap(
        WASI,
        "path_filestat_set_times",
        |mut c: C<'_>,
         fd: i32,
         _flags: i32,
         p: i32,
         pl: i32,
         atim: i64,
         mtim: i64,
         fst: i32|
         -> R {
            call(&mut c, |m, s| {
                let fst = u16::try_from(fst).map_err(|_| Errno::INVAL)?;
                let path = m.slice(p as u32, pl as u32)?;
                s.vfs
                    .path_set_times(fd as u32, path, atim as u64, mtim as u64, fst)?;
                Ok(0)
            })
        },
    )?;
    // Hard and symbolic links do not exist in this tree: a link could make one file count twice
    // against the quota or point out of it.
    l.func_wrap(
        WASI,
        "path_link",
        |mut c: C<'_>,
         _fd: i32,
         _fl: i32,
         _p: i32,
         _pl: i32,
         _nfd: i32,
         _np: i32,
         _npl: i32|
         -> R { call(&mut c, |_, _| Err(Errno::NOTSUP.into())) },
    )?;
    l.func_wrap(
        WASI,
        "path_symlink",
        |mut c: C<'_>, _p: i32, _pl: i32, _fd: i32, _np: i32, _npl: i32| -> R {
            call(&mut c, |_, _| Err(Errno::NOTSUP.into()))
        },
    )?;
    l.func_wrap(
        WASI,
        "path_open",
        |mut c: C<'_>,
         fd: i32,
         _dirflags: i32,
         p: i32,
         pl: i32,
         oflags: i32,
         base: i64,
         inh: i64,
         fdflags: i32,
         out: i32|
         -> R {
            call(&mut c, |m, s| {
                m.check(out as u32, 4)?;
                let oflags = u16::try_from(oflags).map_err(|_| Errno::INVAL)?;
                let fdflags = u16::try_from(fdflags).map_err(|_| Errno::INVAL)?;
                let path = m.slice(p as u32, pl as u32)?;
                let new = s
                    .vfs
                    .open(fd as u32, path, oflags, base as u64, inh as u64, fdflags)?;
                m.put_u32(out as u32, new)?;
                Ok(0)
            })
        },
    )?;
    l.func_wrap(
        WASI,
        "path_readlink",
        |mut c: C<'_>, fd: i32, p: i32, pl: i32, _buf: i32, _len: i32, _out: i32| -> R {
            call(&mut c, |m, s| {
                s.vfs.readlink(fd as u32, m.slice(p as u32, pl as u32)?)?;
                Ok(0)
            })
        },
    )?;
    l.func_wrap(
        WASI,
        "path_remove_directory",
        |mut c: C<'_>, fd: i32, p: i32, pl: i32| -> R {
            call(&mut c, |m, s| {
                s.vfs.remove_dir(fd as u32, m.slice(p as u32, pl as u32)?)?;
                Ok(0)
            })
        },
    )?;
    l.func_wrap(
        WASI,
        "path_rename",
        |mut c: C<'_>, fd: i32, p: i32, pl: i32, nfd: i32, np: i32, npl: i32| -> R {
            call(&mut c, |m, s| {
                let old = m.slice(p as u32, pl as u32)?;
                let new = m.slice(np as u32, npl as u32)?;
                s.vfs.rename(fd as u32, old, nfd as u32, new)?;
                Ok(0)
            })
        },
    )?;
    l.func_wrap(
        WASI,
        "path_unlink_file",
        |mut c: C<'_>, fd: i32, p: i32, pl: i32| -> R {
            call(&mut c, |m, s| {
                s.vfs
                    .unlink_file(fd as u32, m.slice(p as u32, pl as u32)?)?;
                Ok(0)
            })
        },
    )?;
    l.func_wrap(WASI, "poll_oneoff", poll_oneoff)?;
    l.func_wrap(
        WASI,
        "proc_exit",
        |mut c: C<'_>, code: i32| -> wasmtime::Result<()> {
            charge(&mut c, HOST_CALL_FUEL)?;
            Err(wasmtime::Error::new(GuestExit(code)))
        },
    )?;
    l.func_wrap(WASI, "proc_raise", |mut c: C<'_>, _sig: i32| -> R {
        call(&mut c, |_, _| Err(Errno::NOTSUP.into()))
    })?;
    l.func_wrap(WASI, "sched_yield", |mut c: C<'_>| -> R {
        call(&mut c, |_, _| Ok(0))
    })?;
    l.func_wrap(
        WASI,
        "random_get",
        |mut c: C<'_>, buf: i32, len: i32| -> R {
            call(&mut c, |m, s| {
                let dst = m.slice_mut(buf as u32, len as u32)?;
                s.random.fill(dst);
                Ok(dst.len() as u64)
            })
        },
    )?;
    l.func_wrap(
        WASI,
        "sock_accept",
        |mut c: C<'_>, fd: i32, _flags: i32, _out: i32| -> R { call(&mut c, |_, s| sock(s, fd)) },
    )?;
    l.func_wrap(
        WASI,
        "sock_recv",
        |mut c: C<'_>, fd: i32, _d: i32, _dl: i32, _f: i32, _o: i32, _of: i32| -> R {
            call(&mut c, |_, s| sock(s, fd))
        },
    )?;
    l.func_wrap(
        WASI,
        "sock_send",
        |mut c: C<'_>, fd: i32, _d: i32, _dl: i32, _f: i32, _o: i32| -> R {
            call(&mut c, |_, s| sock(s, fd))
        },
    )?;
    l.func_wrap(
        WASI,
        "sock_shutdown",
        |mut c: C<'_>, fd: i32, _how: i32| -> R { call(&mut c, |_, s| sock(s, fd)) },
    )?;
    Ok(())
}

/// There are no sockets: every socket call on an open descriptor is ENOTSOCK.
fn sock(s: &mut State, fd: i32) -> Body {
    s.vfs.sock(fd as u32)?;
    Ok(0)
}

fn read(
    m: &mut Mem<'_>,
    s: &mut State,
    fd: i32,
    iovs: i32,
    n: i32,
    offset: Option<u64>,
    out: i32,
) -> Body {
    let list = m.iovs(iovs as u32, n as u32)?;
    m.check(out as u32, 4)?;
    let total = total_len(&list)?;
    let src = s.vfs.read(fd as u32, offset, total)?;
    let mut done = 0usize;
    for (buf, len) in list {
        if done == src.len() {
            break;
        }
        let take = (len as usize).min(src.len() - done);
        m.put(buf, &src[done..done + take])?;
        done += take;
    }
    m.put_u32(out as u32, done as u32)?;
    Ok(done as u64)
}

fn write(
    m: &mut Mem<'_>,
    s: &mut State,
    fd: i32,
    iovs: i32,
    n: i32,
    offset: Option<u64>,
    out: i32,
) -> Body {
    let list = m.iovs(iovs as u32, n as u32)?;
    m.check(out as u32, 4)?;
    let total = total_len(&list)?;
    let dst = s.vfs.write(fd as u32, offset, total)?;
    let mut done = 0usize;
    for (buf, len) in list {
        let src = m.slice(buf, len)?;
        dst[done..done + src.len()].copy_from_slice(src);
        done += src.len();
    }
    m.put_u32(out as u32, total as u32)?;
    Ok(total)
}

/// `poll_oneoff` that never blocks: every subscription (clock or fd) is reported ready at once.
/// Clocks are fixed, so a sleep "completes" immediately; a guest that loops on sleeping burns
/// fuel instead of wall time and cannot sleep through its deadline.
fn poll_oneoff(mut c: C<'_>, in_ptr: i32, out_ptr: i32, nsubs: i32, nevents_ptr: i32) -> R {
    let n = nsubs as u32;
    if n == 0 || n > MAX_SUBSCRIPTIONS {
        charge(&mut c, HOST_CALL_FUEL)?;
        return Ok(i32::from(Errno::INVAL.0));
    }
    charge(&mut c, POLL_FUEL_PER_SUBSCRIPTION * u64::from(n))?;
    call(&mut c, |m, _| {
        let subs = m.slice(in_ptr as u32, n * 48)?.to_vec();
        m.check(out_ptr as u32, n * 32)?;
        m.check(nevents_ptr as u32, 4)?;
        let mut events = vec![0u8; n as usize * 32];
        for (sub, ev) in subs.chunks_exact(48).zip(events.chunks_exact_mut(32)) {
            let tag = sub[8];
            if tag > 2 {
                return Err(Errno::INVAL.into());
            }
            ev[0..8].copy_from_slice(&sub[0..8]); // userdata
            // error = 0 (bytes 8..10), type = tag, fd_readwrite nbytes = 0, flags = 0.
            ev[10] = tag;
        }
        m.put(out_ptr as u32, &events)?;
        m.put_u32(nevents_ptr as u32, n)?;
        Ok(0)
    })
}
