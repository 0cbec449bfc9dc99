//! What a replica commits to and reveals, and how a misbehaving worker lies about it.

use exo_types::{Address, Hash32, ResultCommit, ResultReveal, result_commitment, result_seal};
use serde::{Deserialize, Serialize};

/// How a worker misbehaves, for simulations and end-to-end tests of proof of task. An honest
/// worker has none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Misbehave {
    /// Commits a wrong digest: BLAKE3 of the true one. Every liar of this kind lies the same
    /// way, so two of them on one unit agree: the colluding case.
    WrongResult,
    /// Claims one more fuel than the run used.
    WrongFuel,
    /// Accepts work and never commits.
    NoShow,
    /// Never runs anything: commits what another replica of the unit revealed, if one did
    /// before its own commit deadline, else behaves as a no-show.
    Copy,
    /// Lies like [`Misbehave::WrongResult`] on a unit that shows no other replica when its
    /// run starts, and is honest otherwise: the liar that bets on not being audited.
    LieWhenAlone,
}

impl Misbehave {
    /// Every kind.
    pub const ALL: [Misbehave; 5] = [
        Misbehave::WrongResult,
        Misbehave::WrongFuel,
        Misbehave::NoShow,
        Misbehave::Copy,
        Misbehave::LieWhenAlone,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Misbehave::WrongResult => "wrong-result",
            Misbehave::WrongFuel => "wrong-fuel",
            Misbehave::NoShow => "no-show",
            Misbehave::Copy => "copy",
            Misbehave::LieWhenAlone => "lie-when-alone",
        }
    }

    /// Parses a name as [`Misbehave::name`] prints it.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|m| m.name() == text.trim().replace('_', "-"))
    }

    /// The (digest, fuel) this worker claims for a run that gave (`digest`, `fuel`); `None`
    /// means it does not commit at all. [`Misbehave::LieWhenAlone`] is honest here: whoever
    /// saw the unit alone claims as [`Misbehave::WrongResult`].
    pub fn claim(misbehave: Option<Self>, digest: Hash32, fuel: u64) -> Option<(Hash32, u64)> {
        match misbehave {
            None | Some(Misbehave::Copy | Misbehave::LieWhenAlone) => Some((digest, fuel)),
            Some(Misbehave::WrongResult) => Some((*blake3::hash(&digest).as_bytes(), fuel)),
            Some(Misbehave::WrongFuel) => Some((digest, fuel.saturating_add(1))),
            Some(Misbehave::NoShow) => None,
        }
    }
}

/// The seed of a unit's randomness (`EXO_SEED`): the same for every replica of the unit, so
/// that honest replicas agree, and different across units and jobs.
///
/// `seed = u64::from_le_bytes(BLAKE3-derive-key("exodus unit seed v1", job_be || unit_be)[..8])`.
pub fn unit_seed(job: u64, unit: u32) -> u64 {
    let mut h = blake3::Hasher::new_derive_key("exodus unit seed v1");
    h.update(&job.to_be_bytes());
    h.update(&unit.to_be_bytes());
    let out = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&out.as_bytes()[..8]);
    u64::from_le_bytes(first)
}

/// A fresh random salt from the operating system.
pub fn new_salt() -> Hash32 {
    rand::random()
}

/// One replica's sealed result, everything needed to commit it and later reveal it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    pub job: u64,
    pub unit: u32,
    pub replica: u32,
    /// What is claimed (after any misbehaviour).
    #[serde(with = "hex32")]
    pub digest: Hash32,
    pub fuel: u64,
    #[serde(with = "hex32")]
    pub salt: Hash32,
}

impl Sealed {
    /// The commitment the ledger checks the reveal against: bound to `provider`.
    pub fn commitment(&self, provider: &Address) -> Hash32 {
        result_commitment(&self.digest, self.fuel, &self.salt, provider)
    }

    pub fn commit(&self, provider: &Address) -> ResultCommit {
        ResultCommit {
            job: self.job,
            unit: self.unit,
            replica: self.replica,
            commitment: self.commitment(provider),
            seal: result_seal(&self.digest, self.fuel, self.job, self.unit),
        }
    }

    pub fn reveal(&self) -> ResultReveal {
        ResultReveal {
            job: self.job,
            unit: self.unit,
            replica: self.replica,
            digest: self.digest,
            fuel: self.fuel,
            salt: self.salt,
        }
    }
}

/// Serde for 32-byte hashes as hex.
pub mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        super::parse_hash(&text)
            .ok_or_else(|| D::Error::custom(format!("{text:?} is not 32-byte hex")))
    }
}

/// Parses 64 hex characters.
pub fn parse_hash(text: &str) -> Option<Hash32> {
    let bytes = hex::decode(text.trim()).ok()?;
    bytes.try_into().ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use commonware_cryptography::Signer;

    #[test]
    fn commitment_binds_everything_and_opens() {
        let provider = exo_types::PrivateKey::from_seed(1).public_key();
        let other = exo_types::PrivateKey::from_seed(2).public_key();
        let sealed = Sealed {
            job: 3,
            unit: 4,
            replica: 1,
            digest: [7; 32],
            fuel: 1_000,
            salt: [9; 32],
        };
        let c = sealed.commit(&provider);
        assert_eq!((c.job, c.unit, c.replica), (3, 4, 1));
        // The ledger recomputes the commitment from the reveal and the sender.
        let r = sealed.reveal();
        assert_eq!(
            result_commitment(&r.digest, r.fuel, &r.salt, &provider),
            c.commitment
        );
        // And the seal it compared before any reveal.
        assert_eq!(result_seal(&r.digest, r.fuel, r.job, r.unit), c.seal);
        // Another provider cannot reuse the commitment; any field changes it.
        assert_ne!(sealed.commitment(&other), c.commitment);
        for changed in [
            Sealed {
                digest: [8; 32],
                ..sealed.clone()
            },
            Sealed {
                fuel: 1_001,
                ..sealed.clone()
            },
            Sealed {
                salt: [0; 32],
                ..sealed.clone()
            },
        ] {
            assert_ne!(changed.commitment(&provider), c.commitment);
        }
        // Persisted as JSON and read back after a restart.
        let json = serde_json::to_string(&sealed).unwrap();
        assert_eq!(serde_json::from_str::<Sealed>(&json).unwrap(), sealed);
    }

    #[test]
    fn misbehaviour_claims() {
        let d = [1; 32];
        assert_eq!(Misbehave::claim(None, d, 5), Some((d, 5)));
        let (wrong, fuel) = Misbehave::claim(Some(Misbehave::WrongResult), d, 5).unwrap();
        assert_ne!(wrong, d);
        assert_eq!(fuel, 5);
        // Consistent: the same lie every time.
        assert_eq!(
            Misbehave::claim(Some(Misbehave::WrongResult), d, 5),
            Some((wrong, 5))
        );
        assert_eq!(
            Misbehave::claim(Some(Misbehave::WrongFuel), d, 5),
            Some((d, 6))
        );
        assert_eq!(Misbehave::claim(Some(Misbehave::NoShow), d, 5), None);
        for m in Misbehave::ALL {
            assert_eq!(Misbehave::parse(m.name()), Some(m));
        }
        assert_eq!(Misbehave::parse("wrong_fuel"), Some(Misbehave::WrongFuel));
        assert_eq!(Misbehave::parse("honest"), None);
    }

    #[test]
    fn seeds_are_per_unit_and_stable() {
        assert_eq!(unit_seed(1, 2), unit_seed(1, 2));
        assert_ne!(unit_seed(1, 2), unit_seed(1, 3));
        assert_ne!(unit_seed(1, 2), unit_seed(2, 2));
        assert_ne!(new_salt(), new_salt());
    }
}
