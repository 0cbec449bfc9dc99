//! What the ledger knows of the state while it executes a block.

use super::keys::Key;
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;

/// The ledger needed keys the cache does not hold yet. The caller fetches them and retries.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{} state keys are not loaded", .0.len())]
pub struct Missing(pub Vec<Key>);

/// Reads fetched from the store and writes made by the block so far.
///
/// Writes are journaled so a transaction that hits [`Missing`] halfway can be rolled back to
/// its [`Checkpoint`] and executed again once the key is loaded.
///
/// Both maps are hash maps with a fixed, unseeded hash: a block looks keys up thousands of
/// times, and ordered maps of 34-byte keys spent most of that in comparisons. Nothing that
/// reaches the state depends on their order: the net writes leave in key order
/// ([`StateCache::into_writes`]), and [`StateCache::writes`] is for order-free uses (sums,
/// counts).
#[derive(Debug, Default, Clone)]
pub struct StateCache {
    loaded: FxHashMap<Key, Option<Vec<u8>>>,
    writes: FxHashMap<Key, Option<Vec<u8>>>,
    undo: Vec<(Key, Option<Option<Vec<u8>>>)>,
}

/// A point to roll the writes back to.
#[derive(Clone, Copy, Debug)]
pub struct Checkpoint(usize);

impl StateCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the stored value of `key`, as fetched by the caller.
    pub fn load(&mut self, key: Key, value: Option<Vec<u8>>) {
        self.loaded.insert(key, value);
    }

    /// The current value of `key`: the block's own write, else the loaded value.
    pub fn get(&self, key: &Key) -> Result<Option<&[u8]>, Missing> {
        if let Some(value) = self.writes.get(key) {
            return Ok(value.as_deref());
        }
        match self.loaded.get(key) {
            Some(value) => Ok(value.as_deref()),
            None => Err(Missing(vec![*key])),
        }
    }

    /// The value of `key` as it was loaded from the store before this block wrote it:
    /// `None` when it was never loaded.
    pub fn before(&self, key: &Key) -> Option<Option<&[u8]>> {
        self.loaded.get(key).map(|v| v.as_deref())
    }

    /// Fails with every key of `keys` the cache does not hold, so that the caller loads them
    /// in one round instead of one retry per key.
    pub fn require(&self, keys: impl IntoIterator<Item = Key>) -> Result<(), Missing> {
        let missing: Vec<Key> = keys.into_iter().filter(|k| !self.holds(k)).collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(Missing(missing))
        }
    }

    /// Fails only when `key` is not held, and then asks for it together with the keys of
    /// `next` the cache does not hold: those the caller expects to need soon, loaded in the
    /// same round. (Requiring the whole window every time would cost a round per step as the
    /// window slides.)
    pub fn require_ahead(
        &self,
        key: Key,
        next: impl IntoIterator<Item = Key>,
    ) -> Result<(), Missing> {
        if self.holds(&key) {
            return Ok(());
        }
        let mut missing = vec![key];
        missing.extend(next.into_iter().filter(|k| *k != key && !self.holds(k)));
        Err(Missing(missing))
    }

    /// Whether `key` is loaded or written.
    pub fn holds(&self, key: &Key) -> bool {
        self.writes.contains_key(key) || self.loaded.contains_key(key)
    }

    /// Writes (or with `None`, deletes) `key`.
    pub fn put(&mut self, key: Key, value: Option<Vec<u8>>) {
        let previous = self.writes.insert(key, value);
        self.undo.push((key, previous));
    }

    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint(self.undo.len())
    }

    /// Undoes every write made since `checkpoint`.
    pub fn rollback(&mut self, checkpoint: Checkpoint) {
        while self.undo.len() > checkpoint.0 {
            let Some((key, previous)) = self.undo.pop() else {
                break;
            };
            match previous {
                Some(value) => self.writes.insert(key, value),
                None => self.writes.remove(&key),
            };
        }
    }

    /// The block's net writes so far, in no particular order: for uses that do not depend on
    /// it. [`StateCache::into_writes`] gives them in key order.
    pub fn writes(&self) -> impl ExactSizeIterator<Item = (&Key, &Option<Vec<u8>>)> {
        self.writes.iter()
    }

    /// Consumes the cache, giving its net writes in key order.
    pub fn into_writes(self) -> BTreeMap<Key, Option<Vec<u8>>> {
        self.writes.into_iter().collect()
    }
}

/// An in-memory store for tests, simulations and tools (`BlockRun::run_with` loads from it).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MemoryBacking {
    pub entries: BTreeMap<Key, Vec<u8>>,
}

impl MemoryBacking {
    /// Applies a block's net writes.
    pub fn apply(&mut self, writes: BTreeMap<Key, Option<Vec<u8>>>) {
        for (key, value) in writes {
            match value {
                Some(value) => self.entries.insert(key, value),
                None => self.entries.remove(&key),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollback_restores_earlier_writes() {
        let mut cache = StateCache::new();
        let a = [1u8; 34];
        cache.load(a, None);
        cache.put(a, Some(vec![1]));
        let cp = cache.checkpoint();
        cache.put(a, Some(vec![2]));
        cache.put([2u8; 34], Some(vec![3]));
        cache.rollback(cp);
        assert_eq!(cache.get(&a).unwrap(), Some(&[1u8][..]));
        assert_eq!(cache.get(&[2u8; 34]), Err(Missing(vec![[2u8; 34]])));
        assert_eq!(cache.writes().len(), 1);
        assert_eq!(cache.into_writes().into_keys().collect::<Vec<_>>(), vec![a]);
    }
}
