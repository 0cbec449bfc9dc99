//! The mempool: bounded, per-sender nonce order, fee priority.

use exo_types::{Address, Amount, SignedTx, TxHash};
use std::{
    cmp::Reverse,
    collections::{BTreeMap, BinaryHeap},
    sync::{Arc, Mutex, MutexGuard},
};

/// Limits of one mempool.
#[derive(Clone, Copy, Debug)]
pub struct MempoolLimits {
    /// Most transactions held in all.
    pub max_txs: usize,
    /// Most transactions held for one sender.
    pub max_per_sender: usize,
}

impl Default for MempoolLimits {
    fn default() -> Self {
        Self {
            max_txs: 200_000,
            max_per_sender: 1_024,
        }
    }
}

/// Why the mempool refused a transaction.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MempoolError {
    #[error("mempool is full ({0} transactions)")]
    Full(usize),
    #[error("sender already has {0} pending transactions")]
    SenderFull(usize),
    #[error("transaction is already pending")]
    Duplicate,
    #[error("a pending transaction with nonce {nonce} pays a higher or equal fee ({fee})")]
    Underpriced { nonce: u64, fee: Amount },
}

#[derive(Clone, Debug)]
struct Entry {
    tx: SignedTx,
    hash: TxHash,
}

#[derive(Default)]
struct Inner {
    by_sender: BTreeMap<Address, BTreeMap<u64, Entry>>,
    by_hash: BTreeMap<TxHash, (Address, u64)>,
}

/// A shared handle to the mempool; clones see the same pool.
#[derive(Clone)]
pub struct Mempool {
    inner: Arc<Mutex<Inner>>,
    limits: MempoolLimits,
}

impl std::fmt::Debug for Mempool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mempool({} txs)", self.len())
    }
}

impl Mempool {
    pub fn new(limits: MempoolLimits) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner::default())),
            limits,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves plain collections behind; keep serving.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn len(&self) -> usize {
        self.lock().by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn contains(&self, hash: &TxHash) -> bool {
        self.lock().by_hash.contains_key(hash)
    }

    /// Adds a transaction whose signature the caller has checked. A transaction with the same
    /// sender and nonce is replaced only by a strictly higher fee.
    pub fn insert(&self, tx: SignedTx) -> Result<TxHash, MempoolError> {
        let hash = tx.hash();
        let mut inner = self.lock();
        if inner.by_hash.contains_key(&hash) {
            return Err(MempoolError::Duplicate);
        }
        let sender = tx.tx.sender.clone();
        let nonce = tx.tx.nonce;
        let total = inner.by_hash.len();
        let queue = inner.by_sender.entry(sender.clone()).or_default();
        let replaced = match queue.get(&nonce) {
            Some(existing) if existing.tx.tx.fee >= tx.tx.fee => {
                return Err(MempoolError::Underpriced {
                    nonce,
                    fee: existing.tx.tx.fee,
                });
            }
            Some(existing) => Some(existing.hash),
            None => {
                if queue.len() >= self.limits.max_per_sender {
                    return Err(MempoolError::SenderFull(queue.len()));
                }
                if total >= self.limits.max_txs {
                    return Err(MempoolError::Full(total));
                }
                None
            }
        };
        queue.insert(nonce, Entry { tx, hash });
        if let Some(old) = replaced {
            inner.by_hash.remove(&old);
        }
        inner.by_hash.insert(hash, (sender, nonce));
        Ok(hash)
    }

    /// Candidates for a block: each sender's transactions in nonce order, senders interleaved
    /// by fee (highest first, ties by hash). At most `max` transactions.
    pub fn candidates(&self, max: usize) -> Vec<SignedTx> {
        let inner = self.lock();
        let mut heads: BinaryHeap<(Amount, Reverse<TxHash>, Address, u64)> = inner
            .by_sender
            .iter()
            .filter_map(|(sender, queue)| {
                let (nonce, entry) = queue.iter().next()?;
                Some((entry.tx.tx.fee, Reverse(entry.hash), sender.clone(), *nonce))
            })
            .collect();
        let mut out = Vec::with_capacity(max.min(inner.by_hash.len()));
        while out.len() < max {
            let Some((_, _, sender, nonce)) = heads.pop() else {
                break;
            };
            let Some(queue) = inner.by_sender.get(&sender) else {
                continue;
            };
            if let Some(entry) = queue.get(&nonce) {
                out.push(entry.tx.clone());
            }
            // Only the next nonce can follow: a gap ends this sender's run for this block.
            if let Some(next) = queue.get(&(nonce + 1)) {
                heads.push((next.tx.tx.fee, Reverse(next.hash), sender, nonce + 1));
            }
        }
        out
    }

    /// Drops transactions by hash (included in a finalized block, or found invalid).
    pub fn remove(&self, hashes: impl IntoIterator<Item = TxHash>) {
        let mut inner = self.lock();
        for hash in hashes {
            if let Some((sender, nonce)) = inner.by_hash.remove(&hash)
                && let Some(queue) = inner.by_sender.get_mut(&sender)
            {
                queue.remove(&nonce);
                if queue.is_empty() {
                    inner.by_sender.remove(&sender);
                }
            }
        }
    }

    /// Drops a sender's transactions below `next_nonce`: they can never execute.
    pub fn prune_sender(&self, sender: &Address, next_nonce: u64) {
        let mut inner = self.lock();
        let Some(queue) = inner.by_sender.get_mut(sender) else {
            return;
        };
        let keep = queue.split_off(&next_nonce);
        let dropped: Vec<TxHash> = queue.values().map(|e| e.hash).collect();
        *queue = keep;
        if queue.is_empty() {
            inner.by_sender.remove(sender);
        }
        for hash in dropped {
            inner.by_hash.remove(&hash);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_cryptography::Signer;
    use exo_types::{Action, PrivateKey, UnsignedTx};

    fn tx(seed: u64, nonce: u64, fee: u128) -> SignedTx {
        let key = PrivateKey::from_seed(seed);
        UnsignedTx {
            chain_id: "t".into(),
            sender: key.public_key(),
            nonce,
            fee: Amount(fee),
            action: Action::Transfer {
                to: PrivateKey::from_seed(99).public_key(),
                amount: Amount(1),
            },
        }
        .sign(&key)
    }

    #[test]
    fn orders_by_fee_across_senders_and_nonce_within() {
        let pool = Mempool::new(MempoolLimits::default());
        pool.insert(tx(1, 1, 50)).unwrap();
        pool.insert(tx(1, 0, 10)).unwrap();
        pool.insert(tx(2, 0, 30)).unwrap();
        pool.insert(tx(3, 5, 100)).unwrap();
        let order: Vec<(u64, u128)> = pool
            .candidates(10)
            .iter()
            .map(|t| (t.tx.nonce, t.tx.fee.0))
            .collect();
        // Sender 3's lowest pending nonce leads on fee; sender 1's nonce 1 waits for nonce 0.
        assert_eq!(order, vec![(5, 100), (0, 30), (0, 10), (1, 50)]);
        assert_eq!(pool.candidates(2).len(), 2);
    }

    #[test]
    fn ten_funded_accounts_with_gapped_nonces_do_not_censor_honest_transfers() {
        let pool = Mempool::new(MempoolLimits::default());
        // Each attacker skips its next nonce (0) and queues as far ahead as it is let.
        for attacker in 1..=10 {
            for nonce in 1..=1_024 {
                let _ = pool.insert(tx(attacker, nonce, 2_000));
            }
        }
        let honest = tx(500, 0, 1_000);
        pool.insert(honest.clone()).unwrap();
        let candidates = pool.candidates(crate::MAX_BLOCK_TXS);
        assert!(candidates.contains(&honest), "the honest transfer is not a candidate");
        assert!(candidates.iter().all(|t| t.tx.nonce == 0), "a gapped transaction ranks");
    }

    #[test]
    fn a_full_pool_evicts_the_lowest_fee() {
        let pool = Mempool::new(MempoolLimits {
            max_txs: 3,
            ..MempoolLimits::default()
        });
        pool.insert(tx(1, 0, 10)).unwrap();
        pool.insert(tx(2, 0, 20)).unwrap();
        pool.insert(tx(3, 0, 30)).unwrap();
        assert!(matches!(
            pool.insert(tx(4, 0, 10)),
            Err(MempoolError::Full { .. })
        ));
        let richer = pool.insert(tx(5, 0, 40)).unwrap();
        assert!(pool.contains(&richer));
        assert!(!pool.contains(&tx(1, 0, 10).hash()), "the lowest fee was not evicted");
        assert_eq!(pool.len(), 3);
    }

    #[test]
    fn bounds_and_replacement() {
        let pool = Mempool::new(MempoolLimits {
            max_txs: 3,
            max_per_sender: 2,
        });
        pool.insert(tx(1, 0, 10)).unwrap();
        assert_eq!(pool.insert(tx(1, 0, 10)), Err(MempoolError::Duplicate));
        assert!(matches!(
            pool.insert(tx(1, 0, 5)),
            Err(MempoolError::Underpriced { .. })
        ));
        pool.insert(tx(1, 0, 20)).unwrap();
        assert_eq!(pool.len(), 1);
        pool.insert(tx(1, 1, 20)).unwrap();
        assert_eq!(pool.insert(tx(1, 2, 20)), Err(MempoolError::SenderFull(2)));
        pool.insert(tx(2, 0, 20)).unwrap();
        assert_eq!(pool.insert(tx(3, 0, 20)), Err(MempoolError::Full(3)));
        pool.prune_sender(&PrivateKey::from_seed(1).public_key(), 1);
        assert_eq!(pool.len(), 2);
        pool.remove([tx(2, 0, 20).hash()]);
        assert_eq!(pool.len(), 1);
    }
}
