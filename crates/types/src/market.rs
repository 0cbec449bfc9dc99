//! The payloads of compute-market transactions: providers, offers, jobs, apps and results.

use crate::{
    Address, Amount,
    codec::{bytes_encode_size, read_bounded_string, write_bytes},
};
use bytes::BufMut;
use commonware_codec::{Buf, EncodeSize, Error, RangeCfg, Read, ReadExt, Write};
use exo_market::{Requirements, Resources};

/// A 32-byte content hash (BLAKE3 for blobs and modules, SHA-256 for commitments).
pub type Hash32 = [u8; 32];

/// Most inputs a job names.
pub const MAX_JOB_INPUTS: usize = 16;
/// Most work units in one job.
pub const MAX_JOB_UNITS: u32 = 10_000;
/// Longest input name, in bytes.
pub const MAX_INPUT_NAME_LEN: usize = 64;
/// Longest argument line of one unit, in bytes.
pub const MAX_UNIT_ARGS_LEN: usize = 256;
/// Longest app name or version, in bytes.
pub const MAX_APP_NAME_LEN: usize = 64;
/// Most results in one commit or reveal transaction.
pub const MAX_RESULTS_PER_TX: usize = 256;
/// Highest trust level: agreeing weight a unit needs before it is accepted.
pub const MAX_TRUST: u8 = 4;

/// An input file of a job, stored in a node's blob store under its BLAKE3 hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputRef {
    /// The name the guest sees under `/in`.
    pub name: String,
    pub hash: Hash32,
    pub size: u64,
}

/// Everything a requester says about a job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobSpec {
    /// The published app: its module hash and its developer. An app is identified by both, so
    /// that publishing someone else's module makes another app, which a job reaches only by
    /// naming its developer.
    pub app: Hash32,
    pub app_developer: Address,
    pub inputs: Vec<InputRef>,
    /// Arguments of each unit: empty (no arguments), or one line per unit, split on spaces.
    pub unit_args: Vec<String>,
    pub units: u32,
    pub requirements: Requirements,
    /// The most the requester pays a provider, in base units per compute unit.
    pub max_price_per_unit: Amount,
    /// Agreeing replica weight a unit needs (1 trusts one provider's word).
    pub trust: u8,
}

/// A sealed result: `commitment = sha256(digest, fuel, salt, provider)`, and the result's
/// seal ([`result_seal`]), which the ledger compares across the unit's replicas before any of
/// them reveals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResultCommit {
    pub job: u64,
    pub unit: u32,
    pub replica: u32,
    pub commitment: Hash32,
    pub seal: Hash32,
}

/// The opening of a commitment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResultReveal {
    pub job: u64,
    pub unit: u32,
    pub replica: u32,
    pub digest: Hash32,
    pub fuel: u64,
    pub salt: Hash32,
}

impl Write for InputRef {
    fn write(&self, buf: &mut impl BufMut) {
        write_bytes(self.name.as_bytes(), buf);
        self.hash.write(buf);
        self.size.write(buf);
    }
}
impl EncodeSize for InputRef {
    fn encode_size(&self) -> usize {
        bytes_encode_size(self.name.as_bytes()) + 32 + 8
    }
}
impl Read for InputRef {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, Error> {
        Ok(Self {
            name: read_bounded_string(buf, MAX_INPUT_NAME_LEN)?,
            hash: Hash32::read(buf)?,
            size: u64::read(buf)?,
        })
    }
}

impl Write for JobSpec {
    fn write(&self, buf: &mut impl BufMut) {
        self.app.write(buf);
        self.app_developer.write(buf);
        self.inputs.write(buf);
        self.unit_args.len().write(buf);
        for line in &self.unit_args {
            write_bytes(line.as_bytes(), buf);
        }
        self.units.write(buf);
        self.requirements.write(buf);
        self.max_price_per_unit.write(buf);
        self.trust.write(buf);
    }
}
impl EncodeSize for JobSpec {
    fn encode_size(&self) -> usize {
        32 + self.app_developer.encode_size()
            + self.inputs.encode_size()
            + self.unit_args.len().encode_size()
            + self
                .unit_args
                .iter()
                .map(|l| bytes_encode_size(l.as_bytes()))
                .sum::<usize>()
            + 4
            + self.requirements.encode_size()
            + 16
            + 1
    }
}
impl Read for JobSpec {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, Error> {
        let app = Hash32::read(buf)?;
        let app_developer = Address::read(buf)?;
        let inputs = Vec::<InputRef>::read_cfg(buf, &(RangeCfg::new(0..=MAX_JOB_INPUTS), ()))?;
        let lines = usize::read_cfg(buf, &RangeCfg::new(0..=MAX_JOB_UNITS as usize))?;
        let mut unit_args = Vec::with_capacity(lines.min(1024));
        for _ in 0..lines {
            unit_args.push(read_bounded_string(buf, MAX_UNIT_ARGS_LEN)?);
        }
        Ok(Self {
            app,
            app_developer,
            inputs,
            unit_args,
            units: u32::read(buf)?,
            requirements: Requirements::read(buf)?,
            max_price_per_unit: Amount::read(buf)?,
            trust: u8::read(buf)?,
        })
    }
}

impl Write for ResultCommit {
    fn write(&self, buf: &mut impl BufMut) {
        self.job.write(buf);
        self.unit.write(buf);
        self.replica.write(buf);
        self.commitment.write(buf);
        self.seal.write(buf);
    }
}
impl EncodeSize for ResultCommit {
    fn encode_size(&self) -> usize {
        8 + 4 + 4 + 32 + 32
    }
}
impl Read for ResultCommit {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, Error> {
        Ok(Self {
            job: u64::read(buf)?,
            unit: u32::read(buf)?,
            replica: u32::read(buf)?,
            commitment: Hash32::read(buf)?,
            seal: Hash32::read(buf)?,
        })
    }
}

impl Write for ResultReveal {
    fn write(&self, buf: &mut impl BufMut) {
        self.job.write(buf);
        self.unit.write(buf);
        self.replica.write(buf);
        self.digest.write(buf);
        self.fuel.write(buf);
        self.salt.write(buf);
    }
}
impl EncodeSize for ResultReveal {
    fn encode_size(&self) -> usize {
        8 + 4 + 4 + 32 + 8 + 32
    }
}
impl Read for ResultReveal {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, Error> {
        Ok(Self {
            job: u64::read(buf)?,
            unit: u32::read(buf)?,
            replica: u32::read(buf)?,
            digest: Hash32::read(buf)?,
            fuel: u64::read(buf)?,
            salt: Hash32::read(buf)?,
        })
    }
}

/// The commitment a provider publishes before anyone reveals: binding the result digest, the
/// fuel it claims and its own address, hidden by a random salt.
pub fn result_commitment(
    digest: &Hash32,
    fuel: u64,
    salt: &Hash32,
    provider: &crate::Address,
) -> Hash32 {
    use commonware_codec::Encode;
    let mut bytes = Vec::with_capacity(32 + 8 + 32 + 32);
    bytes.extend_from_slice(digest);
    bytes.extend_from_slice(&fuel.to_be_bytes());
    bytes.extend_from_slice(salt);
    bytes.extend_from_slice(&provider.encode());
    let hash = crate::hash_bytes(&bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(hash.as_ref());
    out
}

/// The seal of a unit's result, committed beside the commitment: equal for replicas that
/// agree on (digest, fuel), and the same for every "could not finish" report of the unit
/// whatever its reason and fuel (reports are not results; the reveal tells them apart). The
/// ledger compares seals once every replica committed, so a dispute is found, and its deciding
/// replicas commit, while every result of the unit is still sealed. A seal reveals the result
/// only to someone who can guess both its digest and its exact fuel.
///
/// `seal = sha256("exo result seal v1", digest, fuel, job, unit)` for a result,
/// `sha256("exo report seal v1", job, unit)` for a report.
pub fn result_seal(digest: &Hash32, fuel: u64, job: u64, unit: u32) -> Hash32 {
    let mut bytes = Vec::with_capacity(18 + 32 + 8 + 8 + 4);
    if crate::Unfinished::of_digest(digest).is_some() {
        bytes.extend_from_slice(b"exo report seal v1");
    } else {
        bytes.extend_from_slice(b"exo result seal v1");
        bytes.extend_from_slice(digest);
        bytes.extend_from_slice(&fuel.to_be_bytes());
    }
    bytes.extend_from_slice(&job.to_be_bytes());
    bytes.extend_from_slice(&unit.to_be_bytes());
    let hash = crate::hash_bytes(&bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(hash.as_ref());
    out
}

/// Reads a bounded app name or version.
pub(crate) fn read_app_text(buf: &mut impl Buf) -> Result<String, Error> {
    read_bounded_string(buf, MAX_APP_NAME_LEN)
}

/// Reads a resource description.
pub(crate) fn read_resources(buf: &mut impl Buf) -> Result<Resources, Error> {
    Resources::read(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Unfinished;

    /// Seals are compared by the ledger and made by every worker: their bytes are frozen.
    #[test]
    fn seals_agree_exactly_when_results_do_and_every_report_of_a_unit_seals_alike() {
        let seal = result_seal(&[1; 32], 900, 5, 6);
        assert_eq!(
            hex::encode(seal),
            include_str!("../tests/golden/result_seal.hex").trim()
        );
        assert_ne!(seal, result_seal(&[1; 32], 901, 5, 6), "fuel");
        assert_ne!(seal, result_seal(&[2; 32], 900, 5, 6), "digest");
        assert_ne!(seal, result_seal(&[1; 32], 900, 4, 6), "job");
        assert_ne!(seal, result_seal(&[1; 32], 900, 5, 7), "unit");
        let report = result_seal(&Unfinished::Timeout.digest(), 10, 5, 6);
        assert_eq!(
            report,
            result_seal(&Unfinished::ALL[0].digest(), 99, 5, 6),
            "any reason, any fuel"
        );
        assert_ne!(report, result_seal(&Unfinished::Timeout.digest(), 10, 5, 7));
        assert_ne!(report, seal);
    }
}
