//! Canonical binary encoding of the market's types, for the ledger's state and receipts.
//!
//! Integers are big-endian and fixed width, lengths are varints, options are a 0/1 byte then
//! the value, enums are a one-byte tag. Every variable-length field has a bound checked before
//! anything is allocated, and every type that has a `validate` is validated on read, so a
//! decoded value is always one the ledger could have accepted. The golden tests at the bottom
//! freeze the bytes: changing one is a format change and must be said so in the commit.

use bytes::BufMut;
use commonware_codec::{Buf, EncodeSize, Error, FixedSize, RangeCfg, Read, ReadExt, Write};

use crate::explain::{ExclusionCounts, Explanation, Reason, Requirement};
use crate::ids::{JobId, OfferId, ProviderId};
use crate::matching::{Assignment, OfferFill, Unmatched};
use crate::order::{
    Constraint, Demand, GpuRequirement, MAX_EXCLUDE_PER_UNIT, MAX_REPLICAS, MAX_UNITS_PER_DEMAND,
    Offer, Requirements, UnitDemand,
};
use crate::resources::{
    DeviceClass, Gpu, MAX_NAME_LEN, Resources, Runtime, RuntimeSet, validate_name,
};

fn wrap<E: std::error::Error + Send + Sync + 'static>(
    context: &'static str,
) -> impl Fn(E) -> Error {
    move |e| Error::Wrapped(context, Box::new(e))
}

fn write_name(name: &str, buf: &mut impl BufMut) {
    name.as_bytes().write(buf);
}

fn name_size(name: &str) -> usize {
    name.as_bytes().encode_size()
}

/// Reads a name and checks it is canonical (which also makes it valid UTF-8).
fn read_name(buf: &mut impl Buf) -> Result<String, Error> {
    let bytes = Vec::<u8>::read_cfg(buf, &(RangeCfg::new(1..=MAX_NAME_LEN), ()))?;
    let text = std::str::from_utf8(&bytes).map_err(wrap("name"))?;
    validate_name(text).map_err(wrap("name"))?;
    Ok(text.to_owned())
}

fn write_opt_name(name: &Option<String>, buf: &mut impl BufMut) {
    name.is_some().write(buf);
    if let Some(n) = name {
        write_name(n, buf);
    }
}

fn opt_name_size(name: &Option<String>) -> usize {
    1 + name.as_deref().map_or(0, name_size)
}

fn read_opt_name(buf: &mut impl Buf) -> Result<Option<String>, Error> {
    if bool::read(buf)? {
        Ok(Some(read_name(buf)?))
    } else {
        Ok(None)
    }
}

macro_rules! fixed_id {
    ($t:ident) => {
        impl Write for $t {
            fn write(&self, buf: &mut impl BufMut) {
                self.0.write(buf);
            }
        }
        impl Read for $t {
            type Cfg = ();
            fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, Error> {
                Ok($t(u64::read(buf)?))
            }
        }
        impl FixedSize for $t {
            const SIZE: usize = u64::SIZE;
        }
    };
}
fixed_id!(ProviderId);
fixed_id!(OfferId);
fixed_id!(JobId);

macro_rules! tagged {
    ($t:ident) => {
        impl Write for $t {
            fn write(&self, buf: &mut impl BufMut) {
                self.tag().write(buf);
            }
        }
        impl Read for $t {
            type Cfg = ();
            fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, Error> {
                let tag = u8::read(buf)?;
                $t::from_tag(tag).ok_or(Error::InvalidEnum(tag))
            }
        }
        impl FixedSize for $t {
            const SIZE: usize = 1;
        }
    };
}
tagged!(DeviceClass);
tagged!(Runtime);

impl Write for RuntimeSet {
    fn write(&self, buf: &mut impl BufMut) {
        self.bits().write(buf);
    }
}
impl Read for RuntimeSet {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, Error> {
        RuntimeSet::from_bits(u8::read(buf)?)
            .ok_or(Error::Invalid("RuntimeSet", "a bit names no known runtime"))
    }
}
impl FixedSize for RuntimeSet {
    const SIZE: usize = 1;
}

impl Write for Gpu {
    fn write(&self, buf: &mut impl BufMut) {
        write_name(&self.model, buf);
        self.count.write(buf);
        self.memory_mib.write(buf);
    }
}
impl EncodeSize for Gpu {
    fn encode_size(&self) -> usize {
        name_size(&self.model) + u32::SIZE + u64::SIZE
    }
}
impl Read for Gpu {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, Error> {
        let gpu = Gpu {
            model: read_name(buf)?,
            count: u32::read(buf)?,
            memory_mib: u64::read(buf)?,
        };
        gpu.validate().map_err(wrap("Gpu"))?;
        Ok(gpu)
    }
}

impl Write for Resources {
    fn write(&self, buf: &mut impl BufMut) {
        self.cores.write(buf);
        self.cpu_score.write(buf);
        self.memory_mib.write(buf);
        self.gpu.write(buf);
        self.class.write(buf);
        write_name(&self.region, buf);
        self.runtimes.write(buf);
        self.max_unit_fuel.write(buf);
    }
}
impl EncodeSize for Resources {
    fn encode_size(&self) -> usize {
        u32::SIZE
            + u64::SIZE
            + u64::SIZE
            + self.gpu.encode_size()
            + DeviceClass::SIZE
            + name_size(&self.region)
            + RuntimeSet::SIZE
            + u64::SIZE
    }
}
impl Read for Resources {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, Error> {
        let resources = Resources {
            cores: u32::read(buf)?,
            cpu_score: u64::read(buf)?,
            memory_mib: u64::read(buf)?,
            gpu: Option::<Gpu>::read(buf)?,
            class: DeviceClass::read(buf)?,
            region: read_name(buf)?,
            runtimes: RuntimeSet::read(buf)?,
            max_unit_fuel: u64::read(buf)?,
        };
        resources.validate().map_err(wrap("Resources"))?;
        Ok(resources)
    }
}

impl Write for Offer {
    fn write(&self, buf: &mut impl BufMut) {
        self.id.write(buf);
        self.provider.write(buf);
        self.resources.write(buf);
        self.reputation.write(buf);
        self.slots.write(buf);
        self.price_per_unit.write(buf);
        self.posted_secs.write(buf);
        self.expiry_secs.write(buf);
    }
}
impl EncodeSize for Offer {
    fn encode_size(&self) -> usize {
        OfferId::SIZE
            + ProviderId::SIZE
            + self.resources.encode_size()
            + u32::SIZE
            + u32::SIZE
            + u128::SIZE
            + u64::SIZE
            + u64::SIZE
    }
}
impl Read for Offer {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, Error> {
        let offer = Offer {
            id: OfferId::read(buf)?,
            provider: ProviderId::read(buf)?,
            resources: Resources::read(buf)?,
            reputation: u32::read(buf)?,
            slots: u32::read(buf)?,
            price_per_unit: u128::read(buf)?,
            posted_secs: u64::read(buf)?,
            expiry_secs: u64::read(buf)?,
        };
        offer.validate().map_err(wrap("Offer"))?;
        Ok(offer)
    }
}

impl Write for GpuRequirement {
    fn write(&self, buf: &mut impl BufMut) {
        write_opt_name(&self.model, buf);
        self.min_count.write(buf);
        self.min_memory_mib.write(buf);
    }
}
impl EncodeSize for GpuRequirement {
    fn encode_size(&self) -> usize {
        opt_name_size(&self.model) + u32::SIZE + u64::SIZE
    }
}
impl Read for GpuRequirement {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, Error> {
        // Bounds are checked by `Requirements::validate`, which every reader of a requirement
        // goes through; an explanation's copy only needs to be well-formed.
        Ok(GpuRequirement {
            model: read_opt_name(buf)?,
            min_count: u32::read(buf)?,
            min_memory_mib: u64::read(buf)?,
        })
    }
}

impl Write for Requirements {
    fn write(&self, buf: &mut impl BufMut) {
        self.min_cores.write(buf);
        self.min_memory_mib.write(buf);
        self.min_cpu_score.write(buf);
        self.gpu.write(buf);
        self.class.write(buf);
        write_opt_name(&self.region, buf);
        self.runtime.write(buf);
        self.fuel_limit.write(buf);
        self.min_reputation.write(buf);
    }
}
impl EncodeSize for Requirements {
    fn encode_size(&self) -> usize {
        u32::SIZE
            + u64::SIZE
            + u64::SIZE
            + self.gpu.encode_size()
            + self.class.encode_size()
            + opt_name_size(&self.region)
            + Runtime::SIZE
            + u64::SIZE
            + u32::SIZE
    }
}
impl Read for Requirements {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, Error> {
        let req = Requirements {
            min_cores: u32::read(buf)?,
            min_memory_mib: u64::read(buf)?,
            min_cpu_score: u64::read(buf)?,
            gpu: Option::<GpuRequirement>::read(buf)?,
            class: Option::<DeviceClass>::read(buf)?,
            region: read_opt_name(buf)?,
            runtime: Runtime::read(buf)?,
            fuel_limit: u64::read(buf)?,
            min_reputation: u32::read(buf)?,
        };
        req.validate().map_err(wrap("Requirements"))?;
        Ok(req)
    }
}

impl Write for UnitDemand {
    fn write(&self, buf: &mut impl BufMut) {
        self.unit.write(buf);
        self.replicas.write(buf);
        self.exclude.write(buf);
    }
}
impl EncodeSize for UnitDemand {
    fn encode_size(&self) -> usize {
        u32::SIZE + self.replicas.encode_size() + self.exclude.encode_size()
    }
}
impl Read for UnitDemand {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, Error> {
        Ok(UnitDemand {
            unit: u32::read(buf)?,
            replicas: Vec::<u32>::read_cfg(buf, &(RangeCfg::new(1..=MAX_REPLICAS as usize), ()))?,
            exclude: Vec::<ProviderId>::read_cfg(
                buf,
                &(RangeCfg::new(0..=MAX_EXCLUDE_PER_UNIT), ()),
            )?,
        })
    }
}

impl Write for Demand {
    fn write(&self, buf: &mut impl BufMut) {
        self.job.write(buf);
        self.requirements.write(buf);
        self.max_price_per_unit.write(buf);
        self.submitted_height.write(buf);
        self.units.write(buf);
    }
}
impl EncodeSize for Demand {
    fn encode_size(&self) -> usize {
        JobId::SIZE
            + self.requirements.encode_size()
            + u128::SIZE
            + u64::SIZE
            + self.units.encode_size()
    }
}
impl Read for Demand {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, Error> {
        let demand = Demand {
            job: JobId::read(buf)?,
            requirements: Requirements::read(buf)?,
            max_price_per_unit: u128::read(buf)?,
            submitted_height: u64::read(buf)?,
            units: Vec::<UnitDemand>::read_cfg(
                buf,
                &(RangeCfg::new(1..=MAX_UNITS_PER_DEMAND), ()),
            )?,
        };
        demand.validate().map_err(wrap("Demand"))?;
        Ok(demand)
    }
}

impl Write for Assignment {
    fn write(&self, buf: &mut impl BufMut) {
        self.job.write(buf);
        self.unit.write(buf);
        self.replica.write(buf);
        self.provider.write(buf);
        self.offer.write(buf);
        self.price_per_unit.write(buf);
    }
}
impl FixedSize for Assignment {
    const SIZE: usize =
        JobId::SIZE + u32::SIZE + u32::SIZE + ProviderId::SIZE + OfferId::SIZE + u128::SIZE;
}
impl Read for Assignment {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, Error> {
        Ok(Assignment {
            job: JobId::read(buf)?,
            unit: u32::read(buf)?,
            replica: u32::read(buf)?,
            provider: ProviderId::read(buf)?,
            offer: OfferId::read(buf)?,
            price_per_unit: u128::read(buf)?,
        })
    }
}

impl Write for OfferFill {
    fn write(&self, buf: &mut impl BufMut) {
        self.offer.write(buf);
        self.provider.write(buf);
        self.assigned.write(buf);
        self.remaining_slots.write(buf);
    }
}
impl FixedSize for OfferFill {
    const SIZE: usize = OfferId::SIZE + ProviderId::SIZE + u32::SIZE + u32::SIZE;
}
impl Read for OfferFill {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, Error> {
        Ok(OfferFill {
            offer: OfferId::read(buf)?,
            provider: ProviderId::read(buf)?,
            assigned: u32::read(buf)?,
            remaining_slots: u32::read(buf)?,
        })
    }
}

impl Write for ExclusionCounts {
    fn write(&self, buf: &mut impl BufMut) {
        for n in self.0 {
            n.write(buf);
        }
    }
}
impl FixedSize for ExclusionCounts {
    const SIZE: usize = u64::SIZE * Constraint::ALL.len();
}
impl Read for ExclusionCounts {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, Error> {
        let mut counts = ExclusionCounts::default();
        for n in counts.0.iter_mut() {
            *n = u64::read(buf)?;
        }
        Ok(counts)
    }
}

impl Write for Requirement {
    fn write(&self, buf: &mut impl BufMut) {
        (self.constraint() as u8).write(buf);
        match self {
            Requirement::Cores(n) | Requirement::Reputation(n) => n.write(buf),
            Requirement::Memory(n) | Requirement::Cpu(n) | Requirement::Fuel(n) => n.write(buf),
            Requirement::Gpu(g) => g.write(buf),
            Requirement::Class(c) => c.write(buf),
            Requirement::Region(r) => write_name(r, buf),
            Requirement::Runtime(r) => r.write(buf),
            Requirement::Excluded => {}
        }
    }
}
impl EncodeSize for Requirement {
    fn encode_size(&self) -> usize {
        1 + match self {
            Requirement::Cores(_) | Requirement::Reputation(_) => u32::SIZE,
            Requirement::Memory(_) | Requirement::Cpu(_) | Requirement::Fuel(_) => u64::SIZE,
            Requirement::Gpu(g) => g.encode_size(),
            Requirement::Class(_) => DeviceClass::SIZE,
            Requirement::Region(r) => name_size(r),
            Requirement::Runtime(_) => Runtime::SIZE,
            Requirement::Excluded => 0,
        }
    }
}
impl Read for Requirement {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, Error> {
        let tag = u8::read(buf)?;
        let c = Constraint::ALL
            .get(tag as usize)
            .ok_or(Error::InvalidEnum(tag))?;
        Ok(match c {
            Constraint::Cores => Requirement::Cores(u32::read(buf)?),
            Constraint::Memory => Requirement::Memory(u64::read(buf)?),
            Constraint::Cpu => Requirement::Cpu(u64::read(buf)?),
            Constraint::Gpu => Requirement::Gpu(GpuRequirement::read(buf)?),
            Constraint::Class => Requirement::Class(DeviceClass::read(buf)?),
            Constraint::Region => Requirement::Region(read_name(buf)?),
            Constraint::Runtime => Requirement::Runtime(Runtime::read(buf)?),
            Constraint::Fuel => Requirement::Fuel(u64::read(buf)?),
            Constraint::Reputation => Requirement::Reputation(u32::read(buf)?),
            Constraint::Excluded => Requirement::Excluded,
        })
    }
}

impl Write for Reason {
    fn write(&self, buf: &mut impl BufMut) {
        match self {
            Reason::EmptyBook => 0u8.write(buf),
            Reason::NoProvider { binding } => {
                1u8.write(buf);
                binding.write(buf);
            }
            Reason::PriceTooLow => 2u8.write(buf),
            Reason::SlotsTaken => 3u8.write(buf),
        }
    }
}
impl EncodeSize for Reason {
    fn encode_size(&self) -> usize {
        1 + match self {
            Reason::NoProvider { binding } => binding.encode_size(),
            _ => 0,
        }
    }
}
impl Read for Reason {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, Error> {
        match u8::read(buf)? {
            0 => Ok(Reason::EmptyBook),
            1 => Ok(Reason::NoProvider {
                binding: Requirement::read(buf)?,
            }),
            2 => Ok(Reason::PriceTooLow),
            3 => Ok(Reason::SlotsTaken),
            tag => Err(Error::InvalidEnum(tag)),
        }
    }
}

impl Write for Explanation {
    fn write(&self, buf: &mut impl BufMut) {
        self.live_offers.write(buf);
        self.excluded_by.write(buf);
        self.passed.write(buf);
        self.passed_exact.write(buf);
        self.best_ask.write(buf);
        self.max_price_per_unit.write(buf);
        self.reason.write(buf);
    }
}
impl EncodeSize for Explanation {
    fn encode_size(&self) -> usize {
        u64::SIZE
            + ExclusionCounts::SIZE
            + u64::SIZE
            + bool::SIZE
            + self.best_ask.encode_size()
            + u128::SIZE
            + self.reason.encode_size()
    }
}
impl Read for Explanation {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, Error> {
        Ok(Explanation {
            live_offers: u64::read(buf)?,
            excluded_by: ExclusionCounts::read(buf)?,
            passed: u64::read(buf)?,
            passed_exact: bool::read(buf)?,
            best_ask: Option::<u128>::read(buf)?,
            max_price_per_unit: u128::read(buf)?,
            reason: Reason::read(buf)?,
        })
    }
}

impl Write for Unmatched {
    fn write(&self, buf: &mut impl BufMut) {
        self.job.write(buf);
        self.unit.write(buf);
        self.replica.write(buf);
        self.reason.write(buf);
    }
}
impl EncodeSize for Unmatched {
    fn encode_size(&self) -> usize {
        JobId::SIZE + u32::SIZE + u32::SIZE + self.reason.encode_size()
    }
}
impl Read for Unmatched {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, Error> {
        Ok(Unmatched {
            job: JobId::read(buf)?,
            unit: u32::read(buf)?,
            replica: u32::read(buf)?,
            reason: Explanation::read(buf)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::PASSED_COUNT_LIMIT;
    use commonware_codec::{Decode, DecodeExt, Encode};

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn resources() -> Resources {
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
            runtimes: RuntimeSet::only(Runtime::Wasm32Wasip1).with(Runtime::Wasm32Wasip2),
            max_unit_fuel: 1_000_000_000_000,
        }
    }

    fn offer() -> Offer {
        Offer {
            id: OfferId(42),
            provider: ProviderId(7),
            resources: resources(),
            reputation: 900,
            slots: 4,
            price_per_unit: 12,
            posted_secs: 100,
            expiry_secs: 1_100,
        }
    }

    fn requirements() -> Requirements {
        Requirements {
            min_cores: 4,
            min_memory_mib: 8_192,
            min_cpu_score: 1_000_000_000,
            gpu: Some(GpuRequirement {
                model: Some("rtx4090".into()),
                min_count: 1,
                min_memory_mib: 16_384,
            }),
            class: Some(DeviceClass::Pc),
            region: Some("eu-west".into()),
            runtime: Runtime::Wasm32Wasip1,
            fuel_limit: 5_000_000_000,
            min_reputation: 100,
        }
    }

    fn loose() -> Requirements {
        Requirements {
            min_cores: 1,
            min_memory_mib: 0,
            min_cpu_score: 0,
            gpu: None,
            class: None,
            region: None,
            runtime: Runtime::Wasm32Wasip1,
            fuel_limit: 1,
            min_reputation: 0,
        }
    }

    fn demand() -> Demand {
        Demand {
            job: JobId(9),
            requirements: loose(),
            max_price_per_unit: 10,
            submitted_height: 50,
            units: vec![
                UnitDemand {
                    unit: 0,
                    replicas: vec![0, 1],
                    exclude: vec![],
                },
                UnitDemand {
                    unit: 5,
                    replicas: vec![2],
                    exclude: vec![ProviderId(3)],
                },
            ],
        }
    }

    fn explanation() -> Explanation {
        let mut counts = ExclusionCounts::default();
        counts.set(Constraint::Gpu, 3);
        Explanation {
            live_offers: 3,
            excluded_by: counts,
            passed: 0,
            passed_exact: true,
            best_ask: None,
            max_price_per_unit: 10,
            reason: Reason::NoProvider {
                binding: Requirement::Gpu(GpuRequirement {
                    model: Some("rtx4090".into()),
                    min_count: 1,
                    min_memory_mib: 0,
                }),
            },
        }
    }

    /// Checks the encoding against frozen bytes and that it decodes back to the value.
    fn golden<T>(value: &T, expected: &str)
    where
        T: Encode + Decode<Cfg = ()> + PartialEq + std::fmt::Debug,
    {
        let bytes = value.encode();
        assert_eq!(hex(&bytes), expected, "the encoding of {value:?} changed");
        assert_eq!(&T::decode(bytes).expect("decodes"), value);
    }

    #[test]
    fn golden_ids_and_tags() {
        golden(&ProviderId(7), "0000000000000007");
        golden(&OfferId(0x0102_0304_0506_0708), "0102030405060708");
        golden(&JobId(u64::MAX), "ffffffffffffffff");
        golden(&DeviceClass::Server, "00");
        golden(&DeviceClass::Iot, "04");
        golden(&Runtime::Wasm32Wasip1, "00");
        golden(&Runtime::Wasm32Wasip2, "01");
        golden(&RuntimeSet::only(Runtime::Wasm32Wasip2), "02");
    }

    #[test]
    fn golden_resources() {
        // cores u32 | cpu u64 | memory u64 | gpu option (1, len 7 "rtx4090", count u32, mem u64)
        // | class | region (len 7 "eu-west") | runtimes | max unit fuel u64
        golden(&resources(), RESOURCES_HEX);
    }

    const RESOURCES_HEX: &str = concat!(
        "00000010",
        "0000000077359400",
        "0000000000010000",
        "01",
        "07",
        "72747834303930",
        "00000002",
        "0000000000006000",
        "00",
        "07",
        "65752d77657374",
        "03",
        "000000e8d4a51000",
    );

    const LOOSE_HEX: &str = concat!(
        "00000001",         // min cores
        "0000000000000000", // min memory
        "0000000000000000", // min cpu score
        "00",               // no gpu
        "00",               // any class
        "00",               // any region
        "00",               // wasm32-wasip1
        "0000000000000001", // fuel limit
        "00000000",         // min reputation
    );

    /// Ten u64 exclusion counts, all zero but gpu (index 3) at 3.
    const COUNTS_HEX: &str = concat!(
        "0000000000000000",
        "0000000000000000",
        "0000000000000000",
        "0000000000000003",
        "0000000000000000",
        "0000000000000000",
        "0000000000000000",
        "0000000000000000",
        "0000000000000000",
        "0000000000000000",
    );

    #[test]
    fn golden_offer() {
        let expected = [
            "000000000000002a", // id
            "0000000000000007", // provider
            RESOURCES_HEX,
            "00000384",                         // reputation 900
            "00000004",                         // slots
            "0000000000000000000000000000000c", // price 12
            "0000000000000064",                 // posted at 100
            "000000000000044c",                 // expires at 1100
        ]
        .concat();
        golden(&offer(), &expected);
    }

    #[test]
    fn golden_requirements() {
        let expected = [
            "00000004",         // min cores
            "0000000000002000", // min memory 8192
            "000000003b9aca00", // min cpu score 10^9
            "01",               // gpu:
            "01",               //   model
            "07",
            "72747834303930",   //   "rtx4090"
            "00000001",         //   min count
            "0000000000004000", //   min memory 16384
            "0101",             // class pc
            "01",               // region
            "07",
            "65752d77657374",   // "eu-west"
            "00",               // wasm32-wasip1
            "000000012a05f200", // fuel limit 5 * 10^9
            "00000064",         // min reputation 100
        ]
        .concat();
        golden(&requirements(), &expected);
        golden(&loose(), LOOSE_HEX);
    }

    #[test]
    fn golden_demand() {
        let expected = [
            "0000000000000009", // job
            LOOSE_HEX,
            "0000000000000000000000000000000a", // max price 10
            "0000000000000032",                 // submitted at 50
            "02",                               // two units:
            "00000000",                         //   unit 0
            "02",
            "00000000",
            "00000001", //   replicas 0, 1
            "00",       //   nothing excluded
            "00000005", //   unit 5
            "01",
            "00000002", //   replica 2
            "01",
            "0000000000000003", //   excludes provider 3
        ]
        .concat();
        golden(&demand(), &expected);
    }

    #[test]
    fn golden_outcome_records() {
        let assignment = [
            "0000000000000009",                 // job
            "00000005",                         // unit
            "00000002",                         // replica
            "0000000000000007",                 // provider
            "000000000000002a",                 // offer
            "0000000000000000000000000000000c", // price 12
        ]
        .concat();
        golden(
            &Assignment {
                job: JobId(9),
                unit: 5,
                replica: 2,
                provider: ProviderId(7),
                offer: OfferId(42),
                price_per_unit: 12,
            },
            &assignment,
        );
        golden(
            &OfferFill {
                offer: OfferId(42),
                provider: ProviderId(7),
                assigned: 3,
                remaining_slots: 1,
            },
            "000000000000002a00000000000000070000000300000001",
        );
        let explanation_hex = [
            "0000000000000003", // live offers
            COUNTS_HEX,
            "0000000000000000",                 // passed
            "01",                               // exact
            "00",                               // no best ask
            "0000000000000000000000000000000a", // max price 10
            "01",                               // no provider, binding:
            "03",                               //   gpu
            "01",
            "07",
            "72747834303930",   //   "rtx4090"
            "00000001",         //   min count
            "0000000000000000", //   min memory
        ]
        .concat();
        golden(&explanation(), &explanation_hex);
        let unmatched = [
            "0000000000000009", // job
            "00000005",         // unit
            "00000002",         // replica
            "0000000000000003", // live offers
            COUNTS_HEX,
            "0000000000000064", // passed: at least 100
            "00",               // not exact
            "01",
            "0000000000000000000000000000000c", // best ask 12
            "0000000000000000000000000000000a", // max price 10
            "02",                               // price too low
        ]
        .concat();
        golden(
            &Unmatched {
                job: JobId(9),
                unit: 5,
                replica: 2,
                reason: Explanation {
                    reason: Reason::PriceTooLow,
                    passed: PASSED_COUNT_LIMIT,
                    passed_exact: false,
                    best_ask: Some(12),
                    ..explanation()
                },
            },
            &unmatched,
        );
    }

    #[test]
    fn decoding_rejects_bad_input() {
        // Unknown tags and bits.
        assert!(matches!(
            DeviceClass::decode(vec![5u8]),
            Err(Error::InvalidEnum(5))
        ));
        assert!(RuntimeSet::decode(vec![0b100u8]).is_err());
        // Trailing bytes.
        let mut bytes = ProviderId(1).encode().to_vec();
        bytes.push(0);
        assert!(matches!(
            ProviderId::decode(bytes),
            Err(Error::ExtraData(1))
        ));
        // Truncated input.
        let bytes = offer().encode();
        assert!(Offer::decode(bytes.slice(..bytes.len() - 1)).is_err());

        // A name longer than the bound is refused before it is read.
        let mut long = resources();
        long.region = "x".repeat(MAX_NAME_LEN + 1);
        assert!(matches!(
            Resources::decode(long.encode()),
            Err(Error::InvalidLength(33))
        ));
        // A non-canonical name.
        let mut upper = resources();
        upper.region = "EU".into();
        assert!(Resources::decode(upper.encode()).is_err());
        // Values `validate` rejects.
        let mut zero = resources();
        zero.cores = 0;
        assert!(Resources::decode(zero.encode()).is_err());
        let mut expired = offer();
        expired.expiry_secs = expired.posted_secs;
        assert!(Offer::decode(expired.encode()).is_err());
        let mut bad = requirements();
        bad.fuel_limit = 0;
        assert!(Requirements::decode(bad.encode()).is_err());
        // Non-canonical or oversized demands.
        let mut unordered = demand();
        unordered.units.swap(0, 1);
        assert!(Demand::decode(unordered.encode()).is_err());
        let mut many = demand();
        many.units[0].replicas = (0..=MAX_REPLICAS).collect();
        assert!(matches!(
            Demand::decode(many.encode()),
            Err(Error::InvalidLength(17))
        ));
        let mut empty = demand();
        empty.units.clear();
        assert!(matches!(
            Demand::decode(empty.encode()),
            Err(Error::InvalidLength(0))
        ));
    }

    #[test]
    fn every_variant_round_trips() {
        let req = requirements();
        for c in Constraint::ALL {
            let binding = Requirement::of(&req, c);
            let e = Explanation {
                reason: Reason::NoProvider { binding },
                ..explanation()
            };
            assert_eq!(Explanation::decode(e.encode()).expect("decodes"), e);
        }
        for reason in [Reason::EmptyBook, Reason::PriceTooLow, Reason::SlotsTaken] {
            let e = Explanation {
                reason,
                ..explanation()
            };
            assert_eq!(Explanation::decode(e.encode()).expect("decodes"), e);
        }
        for class in DeviceClass::ALL {
            assert_eq!(DeviceClass::decode(class.encode()).expect("decodes"), class);
        }
        let mut cpu_only = resources();
        cpu_only.gpu = None;
        assert_eq!(
            Resources::decode(cpu_only.encode()).expect("decodes"),
            cpu_only
        );
    }
}
