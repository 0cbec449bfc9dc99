//! What a provider's machine can do: the resource model that offers snapshot and that
//! requirements are checked against.

use std::fmt;

use thiserror::Error;

/// Fewest cores a machine may declare.
pub const MIN_CORES: u32 = 1;
/// Most cores a machine may declare. Larger hosts split themselves into several providers.
pub const MAX_CORES: u32 = 1024;
/// Most memory a machine may declare: 16 TiB.
pub const MAX_MEMORY_MIB: u64 = 16 * 1024 * 1024;
/// Highest single-core benchmark score, in fuel per second. Wasm fuel is roughly one unit per
/// instruction, so 10^12 is about a hundred times what any core does today.
pub const MAX_CPU_SCORE: u64 = 1_000_000_000_000;
/// Most GPUs a machine may declare.
pub const MAX_GPU_COUNT: u32 = 64;
/// Most memory one GPU may declare: 1 TiB.
pub const MAX_GPU_MEMORY_MIB: u64 = 1024 * 1024;
/// Longest work unit anyone may offer or ask for, in fuel. At 10^10 fuel per second this is
/// more than a day of one core, and keeps `fuel x price` far from overflowing a `u128`.
pub const MAX_UNIT_FUEL: u64 = 1_000_000_000_000_000;
/// Longest region or GPU model name, in bytes.
pub const MAX_NAME_LEN: usize = 32;

/// The kind of machine, which says something about its availability and power budget that the
/// numbers alone do not: a phone may vanish when its owner walks away, a server will not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DeviceClass {
    Server,
    Pc,
    Laptop,
    Phone,
    Iot,
}

impl DeviceClass {
    /// Every class, in tag order.
    pub const ALL: [DeviceClass; 5] = [
        DeviceClass::Server,
        DeviceClass::Pc,
        DeviceClass::Laptop,
        DeviceClass::Phone,
        DeviceClass::Iot,
    ];

    /// The byte this class is encoded as. Frozen: changing it changes stored state.
    pub const fn tag(self) -> u8 {
        match self {
            DeviceClass::Server => 0,
            DeviceClass::Pc => 1,
            DeviceClass::Laptop => 2,
            DeviceClass::Phone => 3,
            DeviceClass::Iot => 4,
        }
    }

    /// The class encoded as `tag`, if any.
    pub const fn from_tag(tag: u8) -> Option<Self> {
        match tag {
            0 => Some(DeviceClass::Server),
            1 => Some(DeviceClass::Pc),
            2 => Some(DeviceClass::Laptop),
            3 => Some(DeviceClass::Phone),
            4 => Some(DeviceClass::Iot),
            _ => None,
        }
    }

    /// Lower-case name, as users type it.
    pub const fn name(self) -> &'static str {
        match self {
            DeviceClass::Server => "server",
            DeviceClass::Pc => "pc",
            DeviceClass::Laptop => "laptop",
            DeviceClass::Phone => "phone",
            DeviceClass::Iot => "iot",
        }
    }
}

impl fmt::Display for DeviceClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A guest runtime a provider's sandbox can execute.
///
/// `Wasm32Wasip1` is the deterministic sandbox every provider runs today. `Wasm32Wasip2` (the
/// component model) is reserved so that a second sandbox can be rolled out provider by provider
/// without a format change; the ledger decides when it may be required.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Runtime {
    Wasm32Wasip1,
    Wasm32Wasip2,
}

impl Runtime {
    /// Every runtime, in tag order.
    pub const ALL: [Runtime; 2] = [Runtime::Wasm32Wasip1, Runtime::Wasm32Wasip2];

    /// The byte this runtime is encoded as, and its bit in a [`RuntimeSet`]. Frozen.
    pub const fn tag(self) -> u8 {
        match self {
            Runtime::Wasm32Wasip1 => 0,
            Runtime::Wasm32Wasip2 => 1,
        }
    }

    /// The runtime encoded as `tag`, if any.
    pub const fn from_tag(tag: u8) -> Option<Self> {
        match tag {
            0 => Some(Runtime::Wasm32Wasip1),
            1 => Some(Runtime::Wasm32Wasip2),
            _ => None,
        }
    }

    /// The target-triple-like name users know.
    pub const fn name(self) -> &'static str {
        match self {
            Runtime::Wasm32Wasip1 => "wasm32-wasip1",
            Runtime::Wasm32Wasip2 => "wasm32-wasip2",
        }
    }

    pub(crate) const fn bit(self) -> u8 {
        1 << self.tag()
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The runtimes a provider supports, as a bit set so that a check is one `and`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct RuntimeSet(u8);

impl RuntimeSet {
    /// Bits that name a known runtime; any other bit is rejected on decode.
    pub const KNOWN_BITS: u8 = 0b11;

    /// The empty set (which `Resources::validate` rejects: a provider must run something).
    pub const fn empty() -> Self {
        RuntimeSet(0)
    }

    /// The set holding only `runtime`.
    pub const fn only(runtime: Runtime) -> Self {
        RuntimeSet(runtime.bit())
    }

    /// The set with `runtime` added.
    #[must_use]
    pub const fn with(self, runtime: Runtime) -> Self {
        RuntimeSet(self.0 | runtime.bit())
    }

    pub const fn contains(self, runtime: Runtime) -> bool {
        self.0 & runtime.bit() != 0
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The raw bits, as encoded.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// The set with these bits, if every bit names a known runtime.
    pub const fn from_bits(bits: u8) -> Option<Self> {
        if bits & !Self::KNOWN_BITS == 0 {
            Some(RuntimeSet(bits))
        } else {
            None
        }
    }

    /// Members in tag order.
    pub fn iter(self) -> impl Iterator<Item = Runtime> {
        Runtime::ALL.into_iter().filter(move |r| self.contains(*r))
    }
}

/// A machine's GPUs. A machine declares one model; mixed rigs register as several providers.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Gpu {
    /// Canonical model name (see [`validate_name`]), e.g. `rtx4090`.
    pub model: String,
    pub count: u32,
    /// Memory of one GPU.
    pub memory_mib: u64,
}

/// A snapshot of what a provider's machine can do, as measured by its benchmark.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Resources {
    pub cores: u32,
    /// Single-core benchmark result in fuel per second. Units run single-threaded (the sandbox
    /// has no threads), so a per-core score is what predicts a unit's wall time.
    pub cpu_score: u64,
    pub memory_mib: u64,
    pub gpu: Option<Gpu>,
    pub class: DeviceClass,
    /// Canonical region name (see [`validate_name`]), e.g. `eu-west`.
    pub region: String,
    pub runtimes: RuntimeSet,
    /// The longest unit, in fuel, this provider accepts to run.
    pub max_unit_fuel: u64,
}

/// Why a name (region or GPU model) is not canonical.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum NameError {
    #[error("the name is empty")]
    Empty,
    #[error("the name is {len} bytes long, more than the {MAX_NAME_LEN} allowed")]
    TooLong { len: usize },
    #[error(
        "the name may hold only lower-case ascii letters, digits, '-', '_' and '.', but byte {index} is 0x{byte:02x}"
    )]
    BadByte { index: usize, byte: u8 },
}

/// Checks that `name` is canonical: 1 to [`MAX_NAME_LEN`] bytes of `a-z 0-9 - _ .`.
///
/// Names are compared byte for byte when matching, so a single spelling is enforced here rather
/// than case-folding at match time: `RTX4090` is rejected instead of silently never matching.
pub fn validate_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong { len: name.len() });
    }
    for (index, &byte) in name.as_bytes().iter().enumerate() {
        let ok = byte.is_ascii_lowercase()
            || byte.is_ascii_digit()
            || byte == b'-'
            || byte == b'_'
            || byte == b'.';
        if !ok {
            return Err(NameError::BadByte { index, byte });
        }
    }
    Ok(())
}

/// The canonical spelling of a GPU model as people and tools write it: lower case, the vendor
/// and product-line words dropped, and every character but letters, digits, '-', '_' and '.'
/// (spaces included) removed (`NVIDIA GeForce RTX 4090`, `RTX 4090` and `rtx4090` are all
/// `rtx4090`; `A100-SXM4-80GB` is `a100-sxm4-80gb`). `None` when nothing valid is left. Providers and requesters both go through it, so that a requirement
/// matches the declarations of the machines it means.
pub fn canonical_gpu_model(name: &str) -> Option<String> {
    let lower = name.trim().to_ascii_lowercase();
    let mut s = lower.as_str();
    for prefix in ["nvidia ", "geforce ", "tesla ", "quadro "] {
        s = s.trim_start().strip_prefix(prefix).unwrap_or(s);
    }
    let model: String = s
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.' || *c == '_')
        .collect();
    validate_name(&model).ok().map(|()| model)
}

/// The canonical spelling of a region name: trimmed and lower case (`EU-West` is `eu-west`).
/// `None` when that is not a valid name.
pub fn canonical_region(name: &str) -> Option<String> {
    let region = name.trim().to_ascii_lowercase();
    validate_name(&region).ok().map(|()| region)
}

/// Why a [`Resources`] declaration is rejected.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ResourceError {
    #[error("cores must be between {MIN_CORES} and {MAX_CORES}, but {0} were declared")]
    Cores(u32),
    #[error("memory must be between 1 and {MAX_MEMORY_MIB} MiB, but {0} MiB was declared")]
    Memory(u64),
    #[error("the cpu score must be between 1 and {MAX_CPU_SCORE} fuel per second, but is {0}")]
    CpuScore(u64),
    #[error("gpu count must be between 1 and {MAX_GPU_COUNT}, but {0} were declared")]
    GpuCount(u32),
    #[error("gpu memory must be between 1 and {MAX_GPU_MEMORY_MIB} MiB, but {0} MiB was declared")]
    GpuMemory(u64),
    #[error("the gpu model name is invalid: {0}")]
    GpuModel(NameError),
    #[error("the region name is invalid: {0}")]
    Region(NameError),
    #[error("at least one runtime must be supported")]
    NoRuntime,
    #[error("the max unit fuel must be between 1 and {MAX_UNIT_FUEL}, but is {0}")]
    MaxUnitFuel(u64),
}

impl Gpu {
    pub fn validate(&self) -> Result<(), ResourceError> {
        validate_name(&self.model).map_err(ResourceError::GpuModel)?;
        if !(1..=MAX_GPU_COUNT).contains(&self.count) {
            return Err(ResourceError::GpuCount(self.count));
        }
        if !(1..=MAX_GPU_MEMORY_MIB).contains(&self.memory_mib) {
            return Err(ResourceError::GpuMemory(self.memory_mib));
        }
        Ok(())
    }
}

impl Resources {
    /// Rejects zero and absurd values, so that nothing downstream has to reason about a machine
    /// with no cores or 10^20 bytes of memory.
    pub fn validate(&self) -> Result<(), ResourceError> {
        if !(MIN_CORES..=MAX_CORES).contains(&self.cores) {
            return Err(ResourceError::Cores(self.cores));
        }
        if !(1..=MAX_MEMORY_MIB).contains(&self.memory_mib) {
            return Err(ResourceError::Memory(self.memory_mib));
        }
        if !(1..=MAX_CPU_SCORE).contains(&self.cpu_score) {
            return Err(ResourceError::CpuScore(self.cpu_score));
        }
        if let Some(gpu) = &self.gpu {
            gpu.validate()?;
        }
        validate_name(&self.region).map_err(ResourceError::Region)?;
        if self.runtimes.is_empty() {
            return Err(ResourceError::NoRuntime);
        }
        if !(1..=MAX_UNIT_FUEL).contains(&self.max_unit_fuel) {
            return Err(ResourceError::MaxUnitFuel(self.max_unit_fuel));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn server() -> Resources {
        Resources {
            cores: 16,
            cpu_score: 2_000_000_000,
            memory_mib: 65_536,
            gpu: Some(Gpu {
                model: "rtx4090".into(),
                count: 2,
                memory_mib: 24_576,
            }),
            class: DeviceClass::Server,
            region: "eu-west".into(),
            runtimes: RuntimeSet::only(Runtime::Wasm32Wasip1),
            max_unit_fuel: 1_000_000_000_000,
        }
    }

    #[test]
    fn a_sane_machine_is_valid() {
        assert_eq!(server().validate(), Ok(()));
    }

    #[test]
    fn zero_and_absurd_values_are_rejected() {
        let cases: Vec<(Resources, ResourceError)> = vec![
            (
                Resources {
                    cores: 0,
                    ..server()
                },
                ResourceError::Cores(0),
            ),
            (
                Resources {
                    cores: MAX_CORES + 1,
                    ..server()
                },
                ResourceError::Cores(MAX_CORES + 1),
            ),
            (
                Resources {
                    memory_mib: 0,
                    ..server()
                },
                ResourceError::Memory(0),
            ),
            (
                Resources {
                    memory_mib: MAX_MEMORY_MIB + 1,
                    ..server()
                },
                ResourceError::Memory(MAX_MEMORY_MIB + 1),
            ),
            (
                Resources {
                    cpu_score: 0,
                    ..server()
                },
                ResourceError::CpuScore(0),
            ),
            (
                Resources {
                    max_unit_fuel: MAX_UNIT_FUEL + 1,
                    ..server()
                },
                ResourceError::MaxUnitFuel(MAX_UNIT_FUEL + 1),
            ),
            (
                Resources {
                    runtimes: RuntimeSet::empty(),
                    ..server()
                },
                ResourceError::NoRuntime,
            ),
            (
                Resources {
                    region: "EU".into(),
                    ..server()
                },
                ResourceError::Region(NameError::BadByte {
                    index: 0,
                    byte: b'E',
                }),
            ),
            (
                Resources {
                    region: "x".repeat(MAX_NAME_LEN + 1),
                    ..server()
                },
                ResourceError::Region(NameError::TooLong {
                    len: MAX_NAME_LEN + 1,
                }),
            ),
            (
                Resources {
                    gpu: Some(Gpu {
                        model: "a100".into(),
                        count: 65,
                        memory_mib: 1,
                    }),
                    ..server()
                },
                ResourceError::GpuCount(65),
            ),
            (
                Resources {
                    gpu: Some(Gpu {
                        model: String::new(),
                        count: 1,
                        memory_mib: 1,
                    }),
                    ..server()
                },
                ResourceError::GpuModel(NameError::Empty),
            ),
        ];
        for (resources, expected) in cases {
            assert_eq!(resources.validate(), Err(expected));
        }
    }

    #[test]
    fn errors_read_as_sentences() {
        assert_eq!(
            ResourceError::Cores(0).to_string(),
            "cores must be between 1 and 1024, but 0 were declared"
        );
        assert_eq!(
            ResourceError::Region(NameError::BadByte {
                index: 0,
                byte: b'E'
            })
            .to_string(),
            "the region name is invalid: the name may hold only lower-case ascii letters, digits, '-', '_' and '.', but byte 0 is 0x45"
        );
    }

    #[test]
    fn tags_round_trip() {
        for class in DeviceClass::ALL {
            assert_eq!(DeviceClass::from_tag(class.tag()), Some(class));
        }
        for runtime in Runtime::ALL {
            assert_eq!(Runtime::from_tag(runtime.tag()), Some(runtime));
        }
        assert_eq!(DeviceClass::from_tag(5), None);
        assert_eq!(RuntimeSet::from_bits(0b100), None);
        let both = RuntimeSet::only(Runtime::Wasm32Wasip1).with(Runtime::Wasm32Wasip2);
        assert_eq!(both.iter().collect::<Vec<_>>(), Runtime::ALL.to_vec());
    }
}
