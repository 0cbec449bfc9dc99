//! A chain in memory: blocks executed by the ledger on a [`MemoryBacking`], synchronously.
//!
//! For tests, simulations and tools that need the real state machine without consensus,
//! storage or a runtime. It executes blocks exactly as validators do: begin, every transaction
//! (signatures checked one by one), end of block, finish.

use crate::{
    Account, BlockEnv, Genesis, Ledger, MemoryBacking, Receipt, StateCache, account_key,
    compute::Record, decode_account,
};
use commonware_codec::EncodeSize;
use exo_types::{Address, SignedTx};

/// A chain of blocks executed in memory.
#[derive(Clone, Debug)]
pub struct MemoryChain {
    pub genesis: Genesis,
    pub store: MemoryBacking,
    pub height: u64,
}

impl MemoryChain {
    pub fn new(genesis: Genesis) -> Self {
        Self {
            genesis,
            store: MemoryBacking::default(),
            height: 0,
        }
    }

    /// Executes the next block; returns each transaction's receipt (`None` for a duplicate).
    pub fn execute_block(&mut self, proposer: &Address, txs: &[SignedTx]) -> Vec<Option<Receipt>> {
        self.height += 1;
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&self.height.to_be_bytes());
        let env = BlockEnv {
            height: self.height,
            proposer: proposer.clone(),
            seed,
        };
        let mut cache = StateCache::new();
        let genesis = &self.genesis;
        let mut ledger = self
            .store
            .resolve(&mut cache, |c| Ledger::begin(c, genesis, env.clone()));
        let mut receipts = Vec::with_capacity(txs.len());
        for (i, tx) in txs.iter().enumerate() {
            let signature_ok = tx.verify_signature();
            let size = tx.encode_size();
            let (next, receipt) = self.store.resolve(&mut cache, |c| {
                let mut attempt = ledger.clone();
                let receipt = attempt.apply_tx(c, i as u32, tx, signature_ok, size)?;
                Ok((attempt, receipt))
            });
            ledger = next;
            receipts.push(receipt);
        }
        let ledger = self.store.resolve(&mut cache, |c| {
            let mut attempt = ledger.clone();
            attempt.end_block(c)?;
            Ok(attempt)
        });
        ledger.finish(&mut cache);
        self.store.apply(cache.into_writes());
        receipts
    }

    /// A record in state.
    pub fn get<T: Record>(&self, key: &crate::Key) -> Option<T> {
        self.store
            .entries
            .get(key)
            .map(|b| T::from_bytes(b).unwrap_or_else(|e| panic!("corrupt record: {e}")))
    }

    pub fn account(&self, address: &Address) -> Account {
        self.store
            .entries
            .get(&account_key(address))
            .and_then(|b| decode_account(b))
            .unwrap_or_default()
    }
}
