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

fn wrap<E: std::error::Error + Send + Sync + 'static>(context: &'static str) -> impl Fn(E) -> Error {
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
        RuntimeSet::from_bits(u8::read(buf)?).ok_or(Error::Invalid(
            "RuntimeSet",
            "a bit names no known runtime",
        ))
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
        self.posted_height.write(buf);
        self.expiry_height.write(buf);
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
            posted_height: u64::read(buf)?,
            expiry_height: u64::read(buf)?,
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
            replicas: Vec::<u32>::read_cfg(
                buf,
                &(RangeCfg::new(1..=MAX_REPLICAS as usize), ()),
            )?,
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
