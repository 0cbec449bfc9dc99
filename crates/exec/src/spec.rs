//! What a unit is ([`UnitSpec`]) and what running it gives ([`UnitResult`]).

use std::fmt;
use std::path::PathBuf;

/// BLAKE3 of a module's wasm bytes.
pub type ModuleHash = [u8; 32];

/// Where the module comes from.
#[derive(Clone, Debug)]
pub enum ModuleSource<'a> {
    /// The wasm bytes; compiled (or found in the cache) by their hash.
    Wasm(&'a [u8]),
    /// A module this node compiled before (see [`crate::Sandbox::prepare`]).
    Hash(ModuleHash),
}

/// One named input, visible to the guest as `/in/<name>`.
#[derive(Clone, Debug)]
pub struct Input<'a> {
    /// A flat file name: no `/`, not `.` or `..`, at most 255 bytes.
    pub name: String,
    pub data: InputData<'a>,
}

#[derive(Clone, Debug)]
pub enum InputData<'a> {
    Bytes(&'a [u8]),
    /// A host file, read into memory for the unit's `/in`.
    Path(PathBuf),
}

/// A work unit: module, inputs, arguments and its limits.
#[derive(Clone, Debug)]
pub struct UnitSpec<'a> {
    pub module: ModuleSource<'a>,
    pub inputs: Vec<Input<'a>>,
    /// Arguments after the program name (the guest sees `argv[0] == "unit"`).
    pub args: Vec<String>,
    /// The unit's index in its job, the guest's `EXO_UNIT`.
    pub unit_index: u64,
    /// Seeds the guest's randomness (`random_get`, `EXO_SEED`).
    pub seed: u64,
    /// Fuel budget; also the most this run can bill.
    pub fuel_limit: u64,
    /// Linear memory limit, checked on every growth.
    pub memory_limit_bytes: u64,
    /// Wall-clock limit, enforced by epoch interruption.
    pub timeout_ms: u64,
    /// Exact bound on the bytes of `/out`'s files (apparent sizes), checked on every write: the
    /// call that would cross it ends the run as `output_too_large`.
    pub max_output_bytes: u64,
    /// Exact bound on each of stdout and stderr, checked the same way.
    pub max_stdio_bytes: u64,
}

impl<'a> UnitSpec<'a> {
    /// A unit with the given module and moderate default limits: 10^10 fuel (10 compute units),
    /// 256 MiB of memory, 10 s, 64 MiB of output, 1 MiB of stdout and of stderr.
    pub fn new(module: ModuleSource<'a>) -> Self {
        UnitSpec {
            module,
            inputs: Vec::new(),
            args: Vec::new(),
            unit_index: 0,
            seed: 0,
            fuel_limit: 10 * crate::FUEL_PER_COMPUTE_UNIT,
            memory_limit_bytes: 256 << 20,
            timeout_ms: 10_000,
            max_output_bytes: 64 << 20,
            max_stdio_bytes: 1 << 20,
        }
    }

    pub fn wasm(wasm: &'a [u8]) -> Self {
        Self::new(ModuleSource::Wasm(wasm))
    }

    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }

    pub fn args<S: Into<String>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn input(mut self, name: impl Into<String>, bytes: &'a [u8]) -> Self {
        self.inputs.push(Input {
            name: name.into(),
            data: InputData::Bytes(bytes),
        });
        self
    }

    pub fn input_path(mut self, name: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        self.inputs.push(Input {
            name: name.into(),
            data: InputData::Path(path.into()),
        });
        self
    }

    pub fn unit(mut self, unit_index: u64, seed: u64) -> Self {
        self.unit_index = unit_index;
        self.seed = seed;
        self
    }

    pub fn fuel(mut self, fuel_limit: u64) -> Self {
        self.fuel_limit = fuel_limit;
        self
    }

    pub fn memory(mut self, memory_limit_bytes: u64) -> Self {
        self.memory_limit_bytes = memory_limit_bytes;
        self
    }

    pub fn timeout_ms(mut self, timeout_ms: u64) -> Self {
        self.timeout_ms = timeout_ms;
        self
    }

    pub fn max_output(mut self, max_output_bytes: u64) -> Self {
        self.max_output_bytes = max_output_bytes;
        self
    }

    pub fn max_stdio(mut self, max_stdio_bytes: u64) -> Self {
        self.max_stdio_bytes = max_stdio_bytes;
        self
    }

    /// The most host memory the sandbox holds for this unit's outputs: `/out` with its growth
    /// slack, stdout and stderr. With the memory limit and the inputs it bounds what a run of
    /// the unit can take from its host, which a worker admitting units in parallel adds up.
    pub fn output_buffer_bytes(&self) -> u64 {
        self.max_output_bytes
            .saturating_add(crate::vfs::GROWTH_SLACK_BYTES)
            .saturating_add(self.max_stdio_bytes.saturating_mul(2))
    }
}

/// Which output broke its bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OutputStream {
    Stdout,
    Stderr,
    /// The `/out` directory (the bytes of its files, or its number of files and directories).
    Out,
    /// The outputs archive the provider hands over (stdout and `/out`, packed) would be larger
    /// than [`MAX_ARCHIVE_BYTES`]. The archive is a function of the run, so every replica
    /// reaches this verdict on the same run.
    Archive,
}

/// Largest outputs archive a provider hands over: the blob bound of the nodes' blob stores.
/// A run whose archive would be larger ends as `output_too_large:archive`, a result like any
/// other, rather than as an archive no node accepts.
pub const MAX_ARCHIVE_BYTES: u64 = 64 << 20;

/// A wasm trap, named independently of wasmtime's types so that it can be recorded and compared.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TrapCode {
    /// Stack exhaustion. Its depth depends on the compiler backend, so it is not attestable
    /// across machines (see [`Outcome::is_attestable`]).
    StackOverflow,
    MemoryOutOfBounds,
    HeapMisaligned,
    TableOutOfBounds,
    IndirectCallToNull,
    BadSignature,
    IntegerOverflow,
    IntegerDivisionByZero,
    BadConversionToInteger,
    /// Also what a Rust guest's panic or failed allocation becomes.
    Unreachable,
    /// Another wasm trap, by wasmtime's description.
    Other(String),
    /// A host function (WASI) refused to go on, by its message.
    Host(String),
}

impl TrapCode {
    pub(crate) fn from_wasmtime(t: wasmtime::Trap) -> TrapCode {
        use wasmtime::Trap as T;
        match t {
            T::StackOverflow => TrapCode::StackOverflow,
            T::MemoryOutOfBounds => TrapCode::MemoryOutOfBounds,
            T::HeapMisaligned => TrapCode::HeapMisaligned,
            T::TableOutOfBounds => TrapCode::TableOutOfBounds,
            T::IndirectCallToNull => TrapCode::IndirectCallToNull,
            T::BadSignature => TrapCode::BadSignature,
            T::IntegerOverflow => TrapCode::IntegerOverflow,
            T::IntegerDivisionByZero => TrapCode::IntegerDivisionByZero,
            T::BadConversionToInteger => TrapCode::BadConversionToInteger,
            T::UnreachableCodeReached => TrapCode::Unreachable,
            other => TrapCode::Other(other.to_string()),
        }
    }

    /// A stable name, part of the result digest.
    pub fn name(&self) -> String {
        match self {
            TrapCode::StackOverflow => "stack_overflow".into(),
            TrapCode::MemoryOutOfBounds => "memory_out_of_bounds".into(),
            TrapCode::HeapMisaligned => "heap_misaligned".into(),
            TrapCode::TableOutOfBounds => "table_out_of_bounds".into(),
            TrapCode::IndirectCallToNull => "indirect_call_to_null".into(),
            TrapCode::BadSignature => "bad_signature".into(),
            TrapCode::IntegerOverflow => "integer_overflow".into(),
            TrapCode::IntegerDivisionByZero => "integer_division_by_zero".into(),
            TrapCode::BadConversionToInteger => "bad_conversion_to_integer".into(),
            TrapCode::Unreachable => "unreachable".into(),
            TrapCode::Other(s) => format!("other:{s}"),
            TrapCode::Host(s) => format!("host:{s}"),
        }
    }
}

/// How a run ended. Every guest behaviour maps to one of these; none is an error of the host.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// `_start` returned or the guest exited with 0.
    Ok,
    /// The guest exited with a non-zero code.
    Exit(i32),
    Trap(TrapCode),
    OutOfFuel,
    /// A memory growth beyond the unit's limit was refused and the guest failed because of it.
    OutOfMemory,
    /// The wall-clock limit passed. Not attestable: it depends on the machine.
    Timeout,
    /// The bytes are not a module this sandbox runs (parse or validation error, a disabled
    /// feature such as threads or relaxed SIMD, an unknown import, no `_start`).
    InvalidModule(String),
    OutputTooLarge(OutputStream),
    /// An input the job names is not in the blob store: the requester did not upload it (or
    /// let it be collected). Every replica sees the same absence, so it is a result the
    /// replicas compare and the requester pays for (no fuel was burnt), never a provider's
    /// fault. The sandbox never produces it; the worker does, instead of running.
    MissingInput,
    /// `/out` holds something other than regular files and directories, or a name that is not
    /// UTF-8. This sandbox no longer produces it (its `/out` cannot hold links, and names must
    /// be UTF-8 to be created); the variant stays because recorded results name it.
    InvalidOutput(String),
}

impl Outcome {
    /// Whether two honest machines must agree on this outcome, its digest and its fuel. Timeouts
    /// depend on machine speed and stack overflows on the compiler backend.
    pub fn is_attestable(&self) -> bool {
        self.unfinished().is_none()
    }

    /// Why a run that ended this way could not finish on this machine, if the outcome depends
    /// on the machine: the worker then reports it ([`exo_types::Unfinished`]) with the fuel it
    /// burnt instead of committing a result (docs/exec-determinism.md, "Who is to blame").
    pub fn unfinished(&self) -> Option<exo_types::Unfinished> {
        match self {
            Outcome::Timeout => Some(exo_types::Unfinished::Timeout),
            Outcome::Trap(TrapCode::StackOverflow) => Some(exo_types::Unfinished::StackOverflow),
            _ => None,
        }
    }

    /// Whether `/out` and stdout were kept (and enter the digest).
    pub fn keeps_outputs(&self) -> bool {
        matches!(
            self,
            Outcome::Ok
                | Outcome::Exit(_)
                | Outcome::Trap(_)
                | Outcome::OutOfFuel
                | Outcome::OutOfMemory
        )
    }

    /// A stable code, part of the result digest. Messages (of invalid modules or outputs) are
    /// left out: they may change with wasmtime versions while the verdict does not.
    pub fn code(&self) -> String {
        match self {
            Outcome::Ok => "ok".into(),
            Outcome::Exit(c) => format!("exit:{c}"),
            Outcome::Trap(t) => format!("trap:{}", t.name()),
            Outcome::OutOfFuel => "out_of_fuel".into(),
            Outcome::OutOfMemory => "out_of_memory".into(),
            Outcome::Timeout => "timeout".into(),
            Outcome::InvalidModule(_) => "invalid_module".into(),
            Outcome::MissingInput => "missing_input".into(),
            Outcome::OutputTooLarge(s) => format!("output_too_large:{s:?}").to_lowercase(),
            Outcome::InvalidOutput(_) => "invalid_output".into(),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::InvalidModule(m) => write!(f, "invalid_module ({m})"),
            Outcome::InvalidOutput(m) => write!(f, "invalid_output ({m})"),
            other => f.write_str(&other.code()),
        }
    }
}

/// One regular file of `/out`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputFile {
    /// Relative to `/out`, `/`-separated.
    pub path: String,
    pub bytes: Vec<u8>,
}

/// The result of a run.
#[derive(Clone, Debug)]
pub struct UnitResult {
    pub outcome: Outcome,
    /// See [`crate::digest`]; replicas compare it together with `fuel_used`.
    pub digest: [u8; 32],
    /// Fuel to bill: `min(used, fuel_limit)`, and the whole budget on timeout. What a "could
    /// not finish" report claims.
    pub fuel_used: u64,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Regular files of `/out`, sorted by path (empty when the outcome drops outputs).
    pub outputs: Vec<OutputFile>,
    /// Directories of `/out` (they enter the digest too), sorted.
    pub output_dirs: Vec<String>,
    /// Largest linear memory the guest was granted.
    pub peak_memory_bytes: u64,
    pub module_hash: ModuleHash,
    /// Whether the compiled module came from the cache (memory or disk) rather than a compile.
    pub cache_hit: bool,
    /// Host time of the run (instantiation and execution), for benchmarks and logs only.
    pub wall_time_us: u64,
}

impl UnitResult {
    /// The result of a unit that did not run, or whose run is replaced by a verdict on what it
    /// produced (an archive over [`MAX_ARCHIVE_BYTES`]): `outcome`, which keeps no outputs,
    /// with `fuel_used` billed. Every replica derives the same digest from it.
    pub fn verdict(outcome: Outcome, fuel_used: u64, module_hash: ModuleHash) -> UnitResult {
        debug_assert!(!outcome.keeps_outputs());
        let digest = crate::digest::result_digest(&outcome, &[], &[], &[]);
        UnitResult {
            outcome,
            digest,
            fuel_used,
            stdout: Vec::new(),
            stderr: Vec::new(),
            outputs: Vec::new(),
            output_dirs: Vec::new(),
            peak_memory_bytes: 0,
            module_hash,
            cache_hit: false,
            wall_time_us: 0,
        }
    }

    pub fn digest_hex(&self) -> String {
        hex::encode(self.digest)
    }

    pub fn output(&self, path: &str) -> Option<&[u8]> {
        self.outputs
            .iter()
            .find(|o| o.path == path)
            .map(|o| o.bytes.as_slice())
    }
}
