//! The mempool: bounded, per-sender nonce order, fee priority, and only executable work ranked.
//!
//! Rules (see ARCHITECTURE.md, "Mempool"):
//! - Each sender has a known next nonce and balance, taken from finalized state at admission and
//!   advanced by finalized blocks. A transaction is admitted only with a nonce from the next one
//!   up to [`MempoolLimits::max_nonce_ahead`] after it, and at most
//!   [`MempoolLimits::max_per_sender`] per sender.
//! - A proposal ranks only *executable* transactions: each sender's run of consecutive nonces
//!   from its next one, while the balance left after the earlier ones still pays the fee.
//!   Gapped or unpayable transactions are never candidates, so they cannot take block space
//!   from anyone.
//! - A transaction that is not executable for [`MempoolLimits::gapped_ttl_blocks`] finalized
//!   blocks is dropped.
//! - When the pool is full, a newcomer that pays more than the lowest fee held evicts it; one
//!   that does not is refused, with the fee it would have to beat.

use crate::block::BlockBounds;
use commonware_codec::EncodeSize as _;
use exo_ledger::Account;
use exo_types::{Action, Address, Amount, SignedTx, TxHash};
use futures::channel::oneshot;
use std::{
    cmp::Reverse,
    collections::{BTreeMap, BTreeSet, BinaryHeap},
    sync::{Arc, Mutex, MutexGuard},
};

/// How far past a sender's next nonce a transaction may wait in the mempool.
pub const MAX_NONCE_AHEAD: u64 = 16;

/// Limits of one mempool.
#[derive(Clone, Copy, Debug)]
pub struct MempoolLimits {
    /// Most transactions held in all.
    pub max_txs: usize,
    /// Most transactions held for one sender.
    pub max_per_sender: usize,
    /// How far past the sender's next nonce a transaction may be.
    pub max_nonce_ahead: u64,
    /// Finalized blocks a transaction may stay without being executable before it is dropped.
    pub gapped_ttl_blocks: u64,
}

impl Default for MempoolLimits {
    fn default() -> Self {
        Self {
            max_txs: 200_000,
            max_per_sender: MAX_NONCE_AHEAD as usize + 1,
            max_nonce_ahead: MAX_NONCE_AHEAD,
            gapped_ttl_blocks: 64,
        }
    }
}

/// Why the mempool refused a transaction.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MempoolError {
    #[error("mempool is full and its lowest fee is {lowest}: offer a higher fee")]
    Full { lowest: Amount },
    #[error("sender already has {0} pending transactions")]
    SenderFull(usize),
    #[error("transaction is already pending")]
    Duplicate,
    #[error("a pending transaction with nonce {nonce} pays a higher or equal fee ({fee})")]
    Underpriced { nonce: u64, fee: Amount },
    #[error("nonce {got} already used (next is {expected})")]
    Stale { expected: u64, got: u64 },
    #[error("nonce {got} is more than {max_ahead} past the next one ({expected})")]
    TooFarAhead {
        expected: u64,
        got: u64,
        max_ahead: u64,
    },
}

#[derive(Clone, Debug)]
struct Entry {
    tx: SignedTx,
    hash: TxHash,
    /// Its encoded size, which counts against a block's byte budget.
    bytes: usize,
    /// Finalized height when it was admitted, or last found executable.
    stamp: u64,
}

/// One sender's pending transactions and what the pool knows of its account.
#[derive(Debug, Default)]
struct Queue {
    next_nonce: u64,
    balance: Amount,
    txs: BTreeMap<u64, Entry>,
}

impl Queue {
    /// The nonces that can execute now, in order: consecutive from the next nonce while the
    /// balance left pays each fee.
    fn executable(&self) -> impl Iterator<Item = &Entry> {
        let mut nonce = self.next_nonce;
        let mut balance = self.balance;
        std::iter::from_fn(move || {
            let entry = self.txs.get(&nonce)?;
            balance = spend(balance, &entry.tx)?;
            nonce = nonce.checked_add(1)?;
            Some(entry)
        })
    }
}

/// The balance left after `tx` pays its fee and, for a transfer that it covers, its amount;
/// `None` when the fee cannot be paid. Other actions may spend more: the block runner has the
/// last word, this only keeps out what is certain to wait.
fn spend(balance: Amount, tx: &SignedTx) -> Option<Amount> {
    let left = balance.0.checked_sub(tx.tx.fee.0)?;
    Some(Amount(match &tx.tx.action {
        Action::Transfer { amount, .. } if amount.0 <= left => left - amount.0,
        _ => left,
    }))
}

#[derive(Default)]
struct Inner {
    by_sender: BTreeMap<Address, Queue>,
    by_hash: BTreeMap<TxHash, (Address, u64)>,
    /// Eviction order: lowest fee first, then a sender's highest nonce, so that a queue loses
    /// its tail before its head.
    by_fee: BTreeSet<(Amount, Reverse<u64>, TxHash)>,
    /// Expiry order.
    by_stamp: BTreeSet<(u64, TxHash)>,
    /// Last finalized height seen.
    height: u64,
    /// Where recent blocks left senders that have nothing pending here: next nonce and the
    /// height that set it. An admission read made just before a block was applied must not
    /// start such a sender from an older nonce. Kept for [`RECENT_BLOCKS`].
    recent: BTreeMap<Address, (u64, u64)>,
    recent_order: BTreeSet<(u64, Address)>,
}

/// Finalized blocks for which a sender's nonce set by a block is remembered without a queue.
const RECENT_BLOCKS: u64 = 4;

impl Inner {
    fn remove(&mut self, hash: &TxHash) -> Option<Entry> {
        let (sender, nonce) = self.by_hash.remove(hash)?;
        let queue = self.by_sender.get_mut(&sender)?;
        let entry = queue.txs.remove(&nonce)?;
        if queue.txs.is_empty() {
            self.by_sender.remove(&sender);
        }
        self.by_fee
            .remove(&(entry.tx.tx.fee, Reverse(nonce), entry.hash));
        self.by_stamp.remove(&(entry.stamp, entry.hash));
        Some(entry)
    }

    /// Records that a block at `height` left `sender` at `next` (at least).
    fn remember(&mut self, sender: &Address, next: u64, height: u64) {
        if let Some((old, at)) = self.recent.insert(sender.clone(), (next, height)) {
            self.recent_order.remove(&(at, sender.clone()));
            if old > next {
                self.recent.insert(sender.clone(), (old, height));
            }
        }
        self.recent_order.insert((height, sender.clone()));
    }

    /// Drops a sender's transactions below its next nonce: they can never execute.
    fn prune(&mut self, sender: &Address) {
        let Some(queue) = self.by_sender.get(sender) else {
            return;
        };
        let stale: Vec<TxHash> = queue
            .txs
            .range(..queue.next_nonce)
            .map(|(_, e)| e.hash)
            .collect();
        for hash in stale {
            self.remove(&hash);
        }
    }
}

/// A shared handle to the mempool; clones see the same pool.
#[derive(Clone)]
pub struct Mempool {
    inner: Arc<Mutex<Inner>>,
    limits: MempoolLimits,
    /// Whoever waits for the next transaction ([`Mempool::arrival`]).
    waiters: Arc<Mutex<Vec<oneshot::Sender<()>>>>,
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
            waiters: Arc::default(),
        }
    }

    /// Resolves once a transaction is next admitted: a leader holding its block back for
    /// work proposes as soon as work comes, instead of at its next look. Waiters that gave up
    /// are dropped as new ones come, so an idle pool keeps a handful at most.
    pub fn arrival(&self) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        let mut waiters = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        waiters.retain(|w| !w.is_canceled());
        waiters.push(tx);
        rx
    }

    /// Wakes every [`Mempool::arrival`].
    fn arrived(&self) {
        let waiters = std::mem::take(&mut *self.waiters.lock().unwrap_or_else(|p| p.into_inner()));
        for waiter in waiters {
            let _ = waiter.send(());
        }
    }

    pub fn limits(&self) -> MempoolLimits {
        self.limits
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

    /// Whether some transaction can execute now: a proposer has work.
    pub fn has_executable(&self) -> bool {
        self.lock()
            .by_sender
            .values()
            .any(|queue| queue.executable().next().is_some())
    }

    /// Whether the executable transactions fill a block of `full`'s bounds: as many
    /// transactions, bytes or work. Stops counting as soon as they do, so a large pool costs
    /// no more than a block's worth. Transactions of blocks proposed but not yet finalized are
    /// still counted (they leave at finalization), so this can say full early, never late.
    pub fn fills_block(&self, full: BlockBounds) -> bool {
        let inner = self.lock();
        let (mut txs, mut bytes, mut work) = (0usize, 0usize, 0usize);
        for entry in inner.by_sender.values().flat_map(Queue::executable) {
            txs += 1;
            bytes = bytes.saturating_add(entry.bytes);
            work = work.saturating_add(exo_ledger::tx_work(&entry.tx));
            if txs >= full.txs || bytes >= full.bytes || work >= full.work {
                return true;
            }
        }
        false
    }

    /// Adds a transaction that passed the ledger's prechecks against `account`, the sender's
    /// finalized account as the caller read it. A transaction with the same sender and nonce
    /// is replaced only by a strictly higher fee.
    pub fn insert(&self, tx: SignedTx, account: &Account) -> Result<TxHash, MempoolError> {
        let hash = tx.hash();
        let mut inner = self.lock();
        if inner.by_hash.contains_key(&hash) {
            return Err(MempoolError::Duplicate);
        }
        let sender = tx.tx.sender.clone();
        let nonce = tx.tx.nonce;
        let fee = tx.tx.fee;
        // The caller's read of finalized state corrects what the pool derived from finalized
        // blocks, except when it is older than the pool's view: a read made just before a
        // block was applied gives a lower nonce, which must not move the sender back. A nonce
        // the pool thinks used but the read does not (a block carried someone's forgery at
        // this sender's next nonce) is the read's word.
        if let Some(queue) = inner.by_sender.get_mut(&sender)
            && (account.nonce >= queue.next_nonce || nonce < queue.next_nonce)
        {
            queue.next_nonce = account.nonce;
            queue.balance = account.balance;
        }
        inner.prune(&sender);
        let (next_nonce, held, replaced) = match inner.by_sender.get(&sender) {
            Some(queue) => (
                queue.next_nonce,
                queue.txs.len(),
                queue.txs.get(&nonce).map(|e| (e.tx.tx.fee, e.hash)),
            ),
            None => {
                let next = match inner.recent.get(&sender) {
                    Some(&(recent, _)) if recent > account.nonce && nonce >= recent => recent,
                    _ => account.nonce,
                };
                (next, 0, None)
            }
        };
        if nonce < next_nonce {
            return Err(MempoolError::Stale {
                expected: next_nonce,
                got: nonce,
            });
        }
        if nonce - next_nonce > self.limits.max_nonce_ahead {
            return Err(MempoolError::TooFarAhead {
                expected: next_nonce,
                got: nonce,
                max_ahead: self.limits.max_nonce_ahead,
            });
        }
        match replaced {
            Some((existing, _)) if existing >= fee => {
                return Err(MempoolError::Underpriced {
                    nonce,
                    fee: existing,
                });
            }
            Some((_, old)) => {
                inner.remove(&old);
            }
            None => {
                if held >= self.limits.max_per_sender {
                    return Err(MempoolError::SenderFull(held));
                }
                if inner.by_hash.len() >= self.limits.max_txs {
                    let Some(&(lowest, _, victim)) = inner.by_fee.first() else {
                        return Err(MempoolError::Full { lowest: Amount(0) });
                    };
                    if fee <= lowest {
                        return Err(MempoolError::Full { lowest });
                    }
                    inner.remove(&victim);
                }
            }
        }
        let stamp = inner.height;
        let queue = inner
            .by_sender
            .entry(sender.clone())
            .or_insert_with(|| Queue {
                next_nonce,
                balance: account.balance,
                txs: BTreeMap::new(),
            });
        let bytes = tx.encode_size();
        queue.txs.insert(
            nonce,
            Entry {
                tx,
                hash,
                bytes,
                stamp,
            },
        );
        inner.by_hash.insert(hash, (sender, nonce));
        inner.by_fee.insert((fee, Reverse(nonce), hash));
        inner.by_stamp.insert((stamp, hash));
        drop(inner);
        self.arrived();
        Ok(hash)
    }

    /// Candidates for a block: only executable transactions, each sender's in nonce order,
    /// senders interleaved by fee (highest first, ties by hash). At most `max` transactions.
    pub fn candidates(&self, max: usize) -> Vec<SignedTx> {
        let inner = self.lock();
        // A sender's next candidate, with the balance left before it.
        type Head = (Amount, Reverse<TxHash>, Address, u64, Amount);
        let mut heads: BinaryHeap<Head> = inner
            .by_sender
            .iter()
            .filter_map(|(sender, queue)| {
                let entry = queue.txs.get(&queue.next_nonce)?;
                Some((
                    entry.tx.tx.fee,
                    Reverse(entry.hash),
                    sender.clone(),
                    queue.next_nonce,
                    queue.balance,
                ))
            })
            .collect();
        let mut out = Vec::with_capacity(max.min(inner.by_hash.len()));
        while out.len() < max {
            let Some((_, _, sender, nonce, balance)) = heads.pop() else {
                break;
            };
            let Some(queue) = inner.by_sender.get(&sender) else {
                continue;
            };
            let Some(entry) = queue.txs.get(&nonce) else {
                continue;
            };
            // The fee must be payable from what the sender's earlier candidates leave.
            let Some(left) = spend(balance, &entry.tx) else {
                continue;
            };
            out.push(entry.tx.clone());
            // Only the next nonce can follow: a gap ends this sender's run for this block.
            if let Some(after) = nonce.checked_add(1)
                && let Some(next) = queue.txs.get(&after)
            {
                heads.push((next.tx.tx.fee, Reverse(next.hash), sender, after, left));
            }
        }
        out
    }

    /// Drops transactions by hash (found invalid while building a block).
    pub fn remove(&self, hashes: impl IntoIterator<Item = TxHash>) {
        let mut inner = self.lock();
        for hash in hashes {
            inner.remove(&hash);
        }
    }

    /// Applies a finalized block: its transactions leave the pool, their senders move to their
    /// next nonces, and transactions not executable for too long expire. Admission reads of
    /// the sender's account correct whatever this estimates wrong.
    pub fn finalized(&self, height: u64, txs: &[SignedTx]) {
        let mut inner = self.lock();
        inner.height = inner.height.max(height);
        let mut senders = BTreeSet::new();
        for tx in txs {
            inner.remove(&tx.hash());
            let t = &tx.tx;
            // A finalized block carries only transactions that paid their fee (the chain
            // refuses a block with any other), so each is its sender's next nonce; the check
            // stays so that a pool that missed a block does not move a sender twice.
            match inner.by_sender.get_mut(&t.sender) {
                Some(queue) => {
                    if t.nonce == queue.next_nonce {
                        queue.next_nonce = queue.next_nonce.saturating_add(1);
                        queue.balance = spend(queue.balance, tx).unwrap_or(Amount(0));
                        senders.insert(t.sender.clone());
                    }
                }
                None => inner.remember(&t.sender, t.nonce.saturating_add(1), height),
            }
            if let Action::Transfer { to, amount } = &t.action
                && let Some(queue) = inner.by_sender.get_mut(to)
            {
                queue.balance = Amount(queue.balance.0.saturating_add(amount.0));
            }
        }
        for sender in &senders {
            inner.prune(sender);
        }
        while let Some((at, sender)) = inner.recent_order.first().cloned() {
            if at.saturating_add(RECENT_BLOCKS) > inner.height {
                break;
            }
            inner.recent_order.remove(&(at, sender.clone()));
            inner.recent.remove(&sender);
        }
        self.expire(&mut inner);
    }

    /// Drops transactions stamped more than the TTL ago that are still not executable; one
    /// found executable is stamped again, so each is looked at once per TTL.
    fn expire(&self, inner: &mut Inner) {
        let height = inner.height;
        while let Some(&(stamp, hash)) = inner.by_stamp.first() {
            if stamp.saturating_add(self.limits.gapped_ttl_blocks.max(1)) > height {
                break;
            }
            let executable = inner.by_hash.get(&hash).and_then(|(sender, nonce)| {
                let queue = inner.by_sender.get(sender)?;
                Some(queue.executable().any(|e| e.tx.tx.nonce == *nonce))
            });
            match executable {
                Some(true) => {
                    inner.by_stamp.remove(&(stamp, hash));
                    inner.by_stamp.insert((height, hash));
                    if let Some((sender, nonce)) = inner.by_hash.get(&hash).cloned()
                        && let Some(entry) = inner
                            .by_sender
                            .get_mut(&sender)
                            .and_then(|q| q.txs.get_mut(&nonce))
                    {
                        entry.stamp = height;
                    }
                }
                Some(false) => {
                    inner.remove(&hash);
                }
                None => {
                    inner.by_stamp.remove(&(stamp, hash));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_cryptography::Signer;
    use exo_types::{PrivateKey, UnsignedTx};

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

    /// An account at `nonce` with plenty of funds.
    fn at(nonce: u64) -> Account {
        Account {
            balance: Amount(1_000_000_000),
            nonce,
        }
    }

    #[test]
    fn an_admitted_transaction_wakes_whoever_waits_and_abandoned_waits_are_dropped() {
        let pool = Mempool::new(MempoolLimits::default());
        let mut first = pool.arrival();
        assert_eq!(first.try_recv(), Ok(None), "nothing arrived yet");
        pool.insert(tx(1, 0, 10), &at(0)).unwrap();
        assert_eq!(first.try_recv(), Ok(Some(())));
        // A refused transaction wakes nobody; the next admitted one does.
        let mut second = pool.arrival();
        assert_eq!(
            pool.insert(tx(1, 0, 10), &at(0)),
            Err(MempoolError::Duplicate)
        );
        assert_eq!(second.try_recv(), Ok(None));
        pool.insert(tx(2, 0, 10), &at(0)).unwrap();
        assert_eq!(second.try_recv(), Ok(Some(())));
        // An idle leader asks again and again; the waits it gave up do not pile up.
        for _ in 0..100 {
            drop(pool.arrival());
        }
        assert!(pool.waiters.lock().unwrap().len() <= 1);
    }

    #[test]
    fn orders_by_fee_across_senders_and_nonce_within() {
        let pool = Mempool::new(MempoolLimits::default());
        pool.insert(tx(1, 1, 50), &at(0)).unwrap();
        pool.insert(tx(1, 0, 10), &at(0)).unwrap();
        pool.insert(tx(2, 0, 30), &at(0)).unwrap();
        pool.insert(tx(3, 5, 100), &at(5)).unwrap();
        let order: Vec<(u64, u128)> = pool
            .candidates(10)
            .iter()
            .map(|t| (t.tx.nonce, t.tx.fee.0))
            .collect();
        // Sender 3's next nonce leads on fee; sender 1's nonce 1 waits for nonce 0.
        assert_eq!(order, vec![(5, 100), (0, 30), (0, 10), (1, 50)]);
        assert_eq!(pool.candidates(2).len(), 2);
    }

    #[test]
    fn a_block_is_full_by_count_bytes_or_work_of_executable_transactions_only() {
        let pool = Mempool::new(MempoolLimits::default());
        let size = tx(1, 0, 10).encode_size();
        pool.insert(tx(1, 0, 10), &at(0)).unwrap();
        pool.insert(tx(2, 0, 10), &at(0)).unwrap();
        // Gapped: waits for nonce 1, so it counts toward nothing.
        pool.insert(tx(3, 2, 10), &at(0)).unwrap();
        let bounds = |txs, bytes, work| BlockBounds { txs, bytes, work };
        let any = usize::MAX;
        assert!(pool.fills_block(bounds(2, any, any)));
        assert!(
            !pool.fills_block(bounds(3, any, any)),
            "the gapped one counted"
        );
        assert!(pool.fills_block(bounds(any, 2 * size, any)));
        assert!(!pool.fills_block(bounds(any, 2 * size + 1, any)));
        // A transfer is one unit of work.
        assert!(pool.fills_block(bounds(any, any, 2)));
        assert!(!pool.fills_block(bounds(any, any, 3)));
        pool.insert(tx(3, 1, 10), &at(0)).unwrap();
        pool.insert(tx(3, 0, 10), &at(0)).unwrap();
        assert!(
            pool.fills_block(bounds(5, 5 * size, 5)),
            "the gap is filled"
        );
        assert!(!Mempool::new(MempoolLimits::default()).fills_block(bounds(1, 1, 1)));
    }

    #[test]
    fn bounds_and_replacement() {
        let pool = Mempool::new(MempoolLimits {
            max_txs: 3,
            max_per_sender: 2,
            ..MempoolLimits::default()
        });
        pool.insert(tx(1, 0, 10), &at(0)).unwrap();
        assert_eq!(
            pool.insert(tx(1, 0, 10), &at(0)),
            Err(MempoolError::Duplicate)
        );
        assert!(matches!(
            pool.insert(tx(1, 0, 5), &at(0)),
            Err(MempoolError::Underpriced { .. })
        ));
        pool.insert(tx(1, 0, 20), &at(0)).unwrap();
        assert_eq!(pool.len(), 1);
        pool.insert(tx(1, 1, 20), &at(0)).unwrap();
        assert_eq!(
            pool.insert(tx(1, 2, 20), &at(0)),
            Err(MempoolError::SenderFull(2))
        );
        pool.insert(tx(2, 0, 20), &at(0)).unwrap();
        assert_eq!(
            pool.insert(tx(3, 0, 20), &at(0)),
            Err(MempoolError::Full { lowest: Amount(20) })
        );
        pool.remove([tx(2, 0, 20).hash()]);
        assert_eq!(pool.len(), 2);
    }

    #[test]
    fn ten_funded_accounts_with_gapped_nonces_do_not_censor_honest_transfers() {
        let pool = Mempool::new(MempoolLimits::default());
        // Each attacker skips its next nonce (0) and queues as far ahead as it is let.
        let mut admitted = 0;
        for attacker in 1..=10 {
            for nonce in 1..=1_024 {
                admitted += usize::from(pool.insert(tx(attacker, nonce, 2_000), &at(0)).is_ok());
            }
        }
        assert_eq!(admitted, 10 * MAX_NONCE_AHEAD as usize);
        let honest = tx(500, 0, 1_000);
        pool.insert(honest.clone(), &at(0)).unwrap();
        let candidates = pool.candidates(crate::MAX_BLOCK_TXS);
        assert_eq!(
            candidates,
            vec![honest],
            "only the honest transfer can execute"
        );
        // The gapped ones expire; the honest one, executable, stays until a block takes it.
        for height in 1..=MempoolLimits::default().gapped_ttl_blocks {
            pool.finalized(height, &[]);
        }
        assert_eq!(pool.len(), 1);
    }

    #[test]
    fn a_full_pool_evicts_the_lowest_fee() {
        let pool = Mempool::new(MempoolLimits {
            max_txs: 3,
            ..MempoolLimits::default()
        });
        pool.insert(tx(1, 0, 10), &at(0)).unwrap();
        pool.insert(tx(2, 0, 20), &at(0)).unwrap();
        pool.insert(tx(3, 0, 30), &at(0)).unwrap();
        let refused = pool.insert(tx(4, 0, 10), &at(0)).unwrap_err();
        assert_eq!(refused, MempoolError::Full { lowest: Amount(10) });
        assert!(
            refused.to_string().contains("lowest fee is 10"),
            "{refused}"
        );
        let richer = pool.insert(tx(5, 0, 40), &at(0)).unwrap();
        assert!(pool.contains(&richer));
        assert!(
            !pool.contains(&tx(1, 0, 10).hash()),
            "the lowest fee was not evicted"
        );
        assert_eq!(pool.len(), 3);
    }

    #[test]
    fn a_few_funded_accounts_cannot_fill_the_pool() {
        let pool = Mempool::new(MempoolLimits {
            max_txs: 1_000,
            ..MempoolLimits::default()
        });
        for attacker in 1..=10 {
            for nonce in 0..100 {
                let _ = pool.insert(tx(attacker, nonce, 2_000), &at(0));
            }
        }
        assert_eq!(pool.len(), 10 * (MAX_NONCE_AHEAD as usize + 1));
        assert_eq!(
            pool.insert(tx(1, 0, 1), &at(1)),
            Err(MempoolError::Stale {
                expected: 1,
                got: 0
            })
        );
        assert!(matches!(
            pool.insert(tx(11, 17, 1), &at(0)),
            Err(MempoolError::TooFarAhead { .. })
        ));
    }

    #[test]
    fn a_fee_the_sender_cannot_pay_after_its_earlier_transactions_is_not_a_candidate() {
        let pool = Mempool::new(MempoolLimits::default());
        // 25 pays the first fee (10) and its transfer (1); 14 left cannot pay a fee of 20.
        let poor = Account {
            balance: Amount(25),
            nonce: 0,
        };
        pool.insert(tx(1, 0, 10), &poor).unwrap();
        pool.insert(tx(1, 1, 20), &poor).unwrap();
        pool.insert(tx(1, 2, 1), &poor).unwrap();
        let order: Vec<u64> = pool.candidates(10).iter().map(|t| t.tx.nonce).collect();
        assert_eq!(order, vec![0]);
        assert!(pool.has_executable());
    }

    #[test]
    fn a_finalized_block_moves_its_senders_on_and_expires_gapped_transactions() {
        let limits = MempoolLimits {
            gapped_ttl_blocks: 4,
            ..MempoolLimits::default()
        };
        let pool = Mempool::new(limits);
        // Nonce 0 went to another validator; nonce 1 waits here, gapped.
        let waiting = tx(1, 1, 10);
        pool.insert(waiting.clone(), &at(0)).unwrap();
        let gapped = tx(2, 3, 10);
        pool.insert(gapped.clone(), &at(0)).unwrap();
        assert!(pool.candidates(10).is_empty());
        assert!(!pool.has_executable());
        pool.finalized(1, &[tx(1, 0, 10)]);
        assert_eq!(pool.candidates(10), vec![waiting.clone()]);
        for height in 2..=3 {
            pool.finalized(height, &[]);
        }
        assert!(pool.contains(&gapped.hash()), "expired before its TTL");
        pool.finalized(4, &[]);
        assert!(
            !pool.contains(&gapped.hash()),
            "a gapped transaction outlived its TTL"
        );
        assert!(
            pool.contains(&waiting.hash()),
            "an executable transaction expired"
        );
    }

    #[test]
    fn a_block_carrying_a_transaction_out_of_order_does_not_move_its_sender_on() {
        let pool = Mempool::new(MempoolLimits::default());
        let next = tx(1, 0, 10);
        pool.insert(next.clone(), &at(0)).unwrap();
        pool.insert(tx(1, 1, 10), &at(0)).unwrap();
        // A byzantine proposer includes nonce 3, which the ledger rejects without a fee.
        pool.finalized(1, &[tx(1, 3, 10)]);
        assert_eq!(pool.candidates(10).first(), Some(&next));
        assert_eq!(pool.len(), 2);
    }

    #[test]
    fn a_read_older_than_the_pool_does_not_move_a_sender_back_but_a_correction_does() {
        let pool = Mempool::new(MempoolLimits::default());
        pool.insert(tx(1, 0, 10), &at(0)).unwrap();
        pool.finalized(1, &[tx(1, 0, 10)]);
        pool.insert(tx(1, 2, 10), &at(0)).unwrap();
        // Read before block 1 was applied: nonce 0; the pool knows 1.
        let one = tx(1, 1, 10);
        pool.insert(one.clone(), &at(0)).unwrap();
        assert_eq!(pool.candidates(1), vec![one]);
        // Block 2 carries a forgery at nonce 1: the pool moves to 2, the ledger stays at 1.
        pool.finalized(2, &[tx(1, 1, 11)]);
        let again = tx(1, 1, 12);
        pool.insert(again.clone(), &at(1)).unwrap();
        assert_eq!(pool.candidates(1), vec![again]);
    }
}
