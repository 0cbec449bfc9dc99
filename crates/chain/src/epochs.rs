//! Committees per epoch: the signing scheme of each epoch for consensus and marshal, the
//! committee the ledger elected for it, and the peers the network tracks during it.
//!
//! The ledger elects the committee of epoch `e + 2` in the last block of epoch `e`, so when the
//! last block of `e - 1` is finalized the committees of `e` and `e + 1` are both in finalized
//! state, written once and never changed. The orchestrator reads them there at each boundary;
//! everything here is therefore a function of finalized state, the same on every node.

use crate::{engine::CONSENSUS_NAMESPACE, store::StateReader};
use commonware_consensus::{simplex::scheme::ed25519::Scheme, types::Epoch};
use commonware_cryptography::{
    certificate::{self, Scheme as _, Scoped},
    ed25519,
};
use commonware_p2p::{Manager, TrackedPeers};
use commonware_runtime::Spawner;
use commonware_storage::Context as StorageContext;
use commonware_utils::ordered::Set;
use exo_ledger::{
    modules::staking::{Committee, Status, queries},
    state::{Query, Record},
};
use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, RwLock},
};

/// Epochs before the current one whose schemes stay registered, so that marshal can still
/// verify the finalizations a slightly lagging peer sends or asks about.
pub const KEPT_EPOCHS: u64 = 4;

/// Most peers one epoch's set names: the three committees around it first, then standing
/// candidates in key order. Bounds what a peer set costs the network (its inbound buffers are
/// sized by it) whatever the number of registered candidates.
pub const MAX_TRACKED_PEERS: usize = 32;

/// The consensus scheme of each epoch, as this node holds it: a signer when its key is in the
/// epoch's committee, a verifier otherwise (the node then follows without voting).
#[derive(Clone)]
pub struct EpochSchemes {
    signer: ed25519::PrivateKey,
    schemes: Arc<RwLock<BTreeMap<Epoch, Arc<Scheme>>>>,
}

impl EpochSchemes {
    pub fn new(signer: ed25519::PrivateKey) -> Self {
        Self {
            signer,
            schemes: Arc::default(),
        }
    }

    /// Registers `committee` as the participants of `epoch` and returns the scheme.
    pub fn register(&self, epoch: Epoch, committee: Set<ed25519::PublicKey>) -> Arc<Scheme> {
        let scheme = Arc::new(
            Scheme::signer(CONSENSUS_NAMESPACE, committee.clone(), self.signer.clone())
                .unwrap_or_else(|| Scheme::verifier(CONSENSUS_NAMESPACE, committee)),
        );
        self.schemes
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(epoch, scheme.clone());
        scheme
    }

    /// Forgets the schemes of epochs before `oldest`.
    pub fn retain_from(&self, oldest: Epoch) {
        self.schemes
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|epoch, _| *epoch >= oldest);
    }

    fn get(&self, epoch: Epoch) -> Option<Arc<Scheme>> {
        self.schemes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&epoch)
            .cloned()
    }
}

impl certificate::Provider for EpochSchemes {
    type Scope = Epoch;
    type Scheme = Scheme;

    fn scoped(&self, epoch: Epoch) -> Option<Scoped<Scheme>> {
        let scheme = self.get(epoch)?;
        Some(if scheme.me().is_some() {
            Scoped::scheme(scheme)
        } else {
            Scoped::verifier(scheme)
        })
    }
}

/// Why an epoch's committee or peers cannot be read. Any of these stops the orchestrator: a
/// node that cannot tell who signs an epoch cannot follow it.
#[derive(Debug, thiserror::Error)]
pub enum EpochError {
    #[error("state read failed: {0}")]
    Store(String),
    #[error("state holds an undecodable {what}: {fault}")]
    Corrupt { what: &'static str, fault: String },
    #[error("no committee is recorded for epoch {0}")]
    NoCommittee(u64),
    #[error("the committee of epoch {0} is empty or names a key twice")]
    BadCommittee(u64),
}

/// The peers of one epoch: its committee drives consensus, the others follow it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EpochPeers {
    /// The committee of the epoch.
    pub primary: Set<ed25519::PublicKey>,
    /// The committees before and after it (leavers still serve, joiners catch up) and the
    /// standing candidates, which follow the chain without voting.
    pub secondary: Set<ed25519::PublicKey>,
    /// The p2p address each peer registered in the ledger, when it did.
    pub addresses: BTreeMap<ed25519::PublicKey, String>,
}

/// Where the orchestrator announces each epoch's peers to the network.
pub trait PeerSets: Send + 'static {
    /// Tracks `peers` as the set of `epoch`; epochs only grow, as the network requires of set
    /// ids.
    fn track(&mut self, epoch: u64, peers: EpochPeers);
}

/// A network that tracks peers by key alone (the simulated network, `discovery`).
#[derive(Clone, Debug)]
pub struct KeyOnly<M>(pub M);

impl<M: Manager<PublicKey = ed25519::PublicKey>> PeerSets for KeyOnly<M> {
    fn track(&mut self, epoch: u64, peers: EpochPeers) {
        // Every node announces the same set at the same id; a network shared by several nodes
        // (the simulator) keeps the first and ignores the repeats.
        let _ = self
            .0
            .track(epoch, TrackedPeers::new(peers.primary, peers.secondary));
    }
}

/// The consensus keys of a committee record, as the ordered set consensus uses; `None` when
/// the record is empty or names a key twice.
pub fn consensus_keys(committee: Committee) -> Option<Set<ed25519::PublicKey>> {
    let keys: Vec<_> = committee
        .members
        .into_iter()
        .map(|m| m.consensus_key)
        .collect();
    Set::try_from(keys).ok().filter(|set| !set.is_empty())
}

/// Reads committees and candidates from finalized state.
pub struct Committees<E: StorageContext + Spawner> {
    state: StateReader<E>,
    /// The genesis committee, which the ledger writes for epochs 0 and 1 with the first block:
    /// before that block the state is empty and this is the answer.
    genesis: Set<ed25519::PublicKey>,
}

impl<E: StorageContext + Spawner> Committees<E> {
    pub fn new(state: StateReader<E>, genesis: Set<ed25519::PublicKey>) -> Self {
        Self { state, genesis }
    }

    async fn read<T: Record>(&self, query: Query<T>) -> Result<Option<T>, EpochError> {
        let value = self
            .state
            .get(&query.key)
            .await
            .map_err(EpochError::Store)?;
        query
            .decode(value.as_deref())
            .map_err(|fault| EpochError::Corrupt {
                what: T::WHAT,
                fault: fault.to_string(),
            })
    }

    /// The consensus keys of `epoch`'s committee.
    pub async fn committee(&self, epoch: Epoch) -> Result<Set<ed25519::PublicKey>, EpochError> {
        let Some(committee) = self.read(queries::committee(epoch.get())).await? else {
            return if epoch.get() <= 1 {
                Ok(self.genesis.clone())
            } else {
                Err(EpochError::NoCommittee(epoch.get()))
            };
        };
        consensus_keys(committee).ok_or(EpochError::BadCommittee(epoch.get()))
    }

    /// The peers of `epoch`: its committee as primary; the previous and next committees and
    /// the standing candidates as secondary, at most [`MAX_TRACKED_PEERS`] in all.
    pub async fn peers(&self, epoch: Epoch) -> Result<EpochPeers, EpochError> {
        let current = self.committee(epoch).await?;
        let mut neighbours: BTreeSet<ed25519::PublicKey> = BTreeSet::new();
        if let Some(previous) = epoch.previous() {
            neighbours.extend(self.committee(previous).await?);
        }
        neighbours.extend(self.committee(epoch.next()).await?);
        let mut addresses = BTreeMap::new();
        let mut candidates = BTreeSet::new();
        for who in self
            .read(queries::validators())
            .await?
            .unwrap_or_default()
            .0
        {
            let Some(v) = self.read(queries::validator(&who)).await? else {
                continue;
            };
            if !v.p2p_address.is_empty() {
                addresses.insert(v.consensus_key.clone(), v.p2p_address);
            }
            if v.status == Status::Active {
                candidates.insert(v.consensus_key);
            }
        }
        // The neighbouring committees first, then the candidates, each in key order.
        let secondary: Vec<_> = neighbours
            .iter()
            .chain(candidates.difference(&neighbours))
            .filter(|k| current.position(k).is_none())
            .take(MAX_TRACKED_PEERS.saturating_sub(current.len()))
            .cloned()
            .collect();
        Ok(EpochPeers {
            primary: current,
            secondary: Set::from_iter_dedup(secondary),
            addresses,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_cryptography::{Signer as _, certificate::Provider as _};

    fn committee(seeds: &[u64]) -> Set<ed25519::PublicKey> {
        Set::from_iter_dedup(
            seeds
                .iter()
                .map(|s| ed25519::PrivateKey::from_seed(*s).public_key()),
        )
    }

    #[test]
    fn a_node_signs_the_epochs_whose_committee_names_it_and_only_verifies_the_others() {
        let schemes = EpochSchemes::new(ed25519::PrivateKey::from_seed(0));
        schemes.register(Epoch::new(1), committee(&[0, 1, 2, 3]));
        schemes.register(Epoch::new(2), committee(&[1, 2, 3, 4]));
        assert!(schemes.scheme(Epoch::new(1)).is_some());
        assert!(schemes.scoped(Epoch::new(2)).is_some());
        assert!(schemes.scheme(Epoch::new(2)).is_none());
        assert!(schemes.scoped(Epoch::new(3)).is_none());
        schemes.retain_from(Epoch::new(2));
        assert!(schemes.scoped(Epoch::new(1)).is_none());
        assert!(schemes.scoped(Epoch::new(2)).is_some());
    }
}
