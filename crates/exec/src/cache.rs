//! The compile cache: compiled modules in memory, and on disk as `.cwasm` files named by the
//! BLAKE3 of the wasm inside a directory named by the engine's compatibility hash and the NaN
//! mode (with the version of its rewrite, [`crate::nan`]), so that a restarted node (or a second
//! sandbox) does not compile again and an engine with another configuration, wasmtime version
//! or rewrite never loads an artifact that is not its own. Modules are rewritten for the NaN
//! mode here, just before they are compiled.
//!
//! Trust: `Module::deserialize` runs the machine code it is given. Only files this cache wrote
//! are ever loaded, from a directory that belongs to the node: each is written to a temporary
//! file, synced, renamed into place and its directory synced, and it starts with the BLAKE3 of
//! the artifact, checked before the artifact is deserialized, so that a file truncated or
//! zero-filled by a crash is compiled again rather than executed. Never point `cache_dir` at a
//! directory others can write.

use crate::error::ExecError;
use crate::host::State;
use crate::nan::{self, NanMode};
use crate::spec::ModuleHash;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use wasmtime::{Engine, InstancePre, Linker, Module};

/// Compiled modules kept in memory; beyond this the oldest-inserted is dropped (the disk copy
/// stays).
pub const MEMORY_ENTRIES: usize = 64;

/// Counters of where modules came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub memory_hits: u64,
    pub disk_hits: u64,
    pub compiles: u64,
}

pub(crate) struct Compiled {
    pub pre: Result<InstancePre<State>, String>,
}

/// Compiled modules by hash, and their insertion order for eviction.
type MemoryCache = (BTreeMap<ModuleHash, Arc<Compiled>>, Vec<ModuleHash>);

pub(crate) struct ModuleCache {
    dir: PathBuf,
    nan_mode: NanMode,
    memory: Mutex<MemoryCache>,
    memory_hits: AtomicU64,
    disk_hits: AtomicU64,
    compiles: AtomicU64,
}

/// Where a lookup was served from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    Memory,
    Disk,
    Compiled,
}

/// The engine's compatibility hash (wasmtime version, target, every codegen setting), as hex.
pub fn engine_hash(engine: &Engine) -> String {
    struct B3(blake3::Hasher);
    impl Hasher for B3 {
        fn finish(&self) -> u64 {
            0
        }
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
    }
    let mut h = B3(blake3::Hasher::new());
    engine.precompile_compatibility_hash().hash(&mut h);
    hex::encode(&h.0.finalize().as_bytes()[..16])
}

impl ModuleCache {
    pub fn open(cache_dir: &Path, engine: &Engine, nan_mode: NanMode) -> Result<Self, ExecError> {
        let dir = cache_dir.join(format!(
            "engine-{}-{}",
            engine_hash(engine),
            nan_mode.cache_tag()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| ExecError::io("create cache dir", &dir, e))?;
        Ok(ModuleCache {
            dir,
            nan_mode,
            memory: Mutex::new((BTreeMap::new(), Vec::new())),
            memory_hits: AtomicU64::new(0),
            disk_hits: AtomicU64::new(0),
            compiles: AtomicU64::new(0),
        })
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            memory_hits: self.memory_hits.load(Ordering::Relaxed),
            disk_hits: self.disk_hits.load(Ordering::Relaxed),
            compiles: self.compiles.load(Ordering::Relaxed),
        }
    }

    fn path(&self, hash: &ModuleHash) -> PathBuf {
        self.dir.join(format!("{}.cwasm", hex::encode(hash)))
    }

    fn remember(&self, hash: ModuleHash, c: Arc<Compiled>) {
        let mut guard = self.memory.lock().unwrap_or_else(|p| p.into_inner());
        let (map, order) = &mut *guard;
        if map.insert(hash, c).is_none() {
            order.push(hash);
            if order.len() > MEMORY_ENTRIES {
                let old = order.remove(0);
                map.remove(&old);
            }
        }
    }

    fn in_memory(&self, hash: &ModuleHash) -> Option<Arc<Compiled>> {
        let guard = self.memory.lock().unwrap_or_else(|p| p.into_inner());
        guard.0.get(hash).cloned()
    }

    /// Finds a compiled module by hash in memory or on disk, without compiling.
    pub fn lookup(
        &self,
        engine: &Engine,
        linker: &Linker<State>,
        hash: &ModuleHash,
    ) -> Result<Option<(Arc<Compiled>, Source)>, ExecError> {
        if let Some(c) = self.in_memory(hash) {
            self.memory_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(Some((c, Source::Memory)));
        }
        let path = self.path(hash);
        if !path.is_file() {
            return Ok(None);
        }
        match load(engine, &path) {
            Ok(module) => {
                let c = Arc::new(link(linker, &module));
                self.remember(*hash, c.clone());
                self.disk_hits.fetch_add(1, Ordering::Relaxed);
                Ok(Some((c, Source::Disk)))
            }
            Err(_) => {
                // Unreadable or stale: drop it and let the caller compile again.
                let _ = std::fs::remove_file(&path);
                Ok(None)
            }
        }
    }

    /// The compiled module for `wasm`, from the cache or freshly compiled and stored.
    /// A module that does not compile comes back as `Ok(Err(reason))`; host faults as `Err`.
    pub fn get_or_compile(
        &self,
        engine: &Engine,
        linker: &Linker<State>,
        hash: &ModuleHash,
        wasm: &[u8],
    ) -> Result<Result<(Arc<Compiled>, Source), String>, ExecError> {
        if let Some(found) = self.lookup(engine, linker, hash)? {
            return Ok(Ok(found));
        }
        self.compiles.fetch_add(1, Ordering::Relaxed);
        let module = match self.compile(engine, wasm) {
            Ok(m) => m,
            Err(reason) => return Ok(Err(reason)),
        };
        let bytes = module
            .serialize()
            .map_err(|e| ExecError::Engine(format!("serialize: {e:#}")))?;
        let path = self.path(hash);
        static NEXT_TMP: AtomicU64 = AtomicU64::new(0);
        let n = NEXT_TMP.fetch_add(1, Ordering::Relaxed);
        let tmp = self.dir.join(format!(
            ".{}.{}.{n}.tmp",
            hex::encode(hash),
            std::process::id()
        ));
        write_checked(&tmp, &bytes).map_err(|e| ExecError::io("write compiled module", &tmp, e))?;
        std::fs::rename(&tmp, &path)
            .and_then(|()| std::fs::File::open(&self.dir)?.sync_all())
            .map_err(|e| ExecError::io("store compiled module", &path, e))?;
        let c = Arc::new(link(linker, &module));
        self.remember(*hash, c.clone());
        Ok(Ok((c, Source::Compiled)))
    }
}

impl ModuleCache {
    /// Rewrites `wasm` for the NaN mode, then compiles it. `Err` is why the module is refused.
    fn compile(&self, engine: &Engine, wasm: &[u8]) -> Result<Module, String> {
        let compiled = match self.nan_mode {
            NanMode::AtObservation => Module::new(engine, nan::canonicalize_at_sinks(wasm)?),
            NanMode::Always | NanMode::Off => Module::new(engine, wasm),
        };
        compiled.map_err(|e| format!("{e:#}"))
    }
}

fn link(linker: &Linker<State>, module: &Module) -> Compiled {
    Compiled {
        pre: linker.instantiate_pre(module).map_err(|e| format!("{e:#}")),
    }
}

/// Writes `artifact` to `path` after its BLAKE3, and syncs the file.
fn write_checked(path: &Path, artifact: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut file = std::fs::File::create(path)?;
    file.write_all(blake3::hash(artifact).as_bytes())?;
    file.write_all(artifact)?;
    file.sync_all()
}

#[allow(unsafe_code)]
fn load(engine: &Engine, path: &Path) -> wasmtime::Result<Module> {
    let bytes = std::fs::read(path)?;
    let Some((checksum, artifact)) = bytes.split_first_chunk::<32>() else {
        wasmtime::bail!("compiled module shorter than its checksum");
    };
    if blake3::hash(artifact).as_bytes() != checksum {
        wasmtime::bail!("compiled module does not match its checksum");
    }
    // SAFETY: these bytes are an artifact `get_or_compile` of this cache serialized, for an
    // engine with the same compatibility hash (it is in the directory name), whole: they match
    // the checksum written before them. wasmtime also checks its header and version. See the
    // module docs on trust.
    unsafe { Module::deserialize(engine, artifact) }
}
