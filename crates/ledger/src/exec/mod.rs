//! The block runner and what it produces: one sans-I/O loop over a block, the prechecks
//! shared with admission, the router to the modules, receipts.

mod block;
mod memory;
mod precheck;
mod receipt;

pub use block::{
    BlockEnv, BlockInput, BlockOutcome, BlockRun, ChainMeta, MAX_PARENT_VOTERS,
    MAX_SKIPPED_LEADERS, Policy, Signatures, Step, tx_work,
};
pub use memory::{BLOCK_INTERVAL_MS, MemoryChain};
pub use precheck::{Nonce, Rules, precheck};
pub use receipt::{
    Coded, Created, Inclusion, MAX_CREATED, ModuleId, Precheck, Receipt, Rejection, TxStatus,
};

/// The block runner's tables in the exec namespace. Frozen.
pub mod keys {
    use crate::state::{Key, Namespace, keys};
    use exo_types::Digest;

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    #[repr(u8)]
    pub enum Table {
        /// The chain metadata (one record).
        Meta = 0,
        /// The parameters (one record).
        Params = 1,
        /// A receipt by transaction hash.
        Receipt = 2,
    }

    pub fn meta_key() -> Key {
        keys::key_u64(Namespace::Exec, Table::Meta as u8, 0)
    }

    pub fn params_key() -> Key {
        keys::key_u64(Namespace::Exec, Table::Params as u8, 0)
    }

    pub fn receipt_key(hash: &Digest) -> Key {
        keys::key(Namespace::Exec, Table::Receipt as u8, hash.as_ref())
    }
}

/// What the block runner answers to readers of finalized state.
pub mod queries {
    use super::{ChainMeta, Receipt, keys};
    use crate::{Params, state::Query};
    use exo_types::Digest;

    pub fn receipt(hash: &Digest) -> Query<Receipt> {
        Query::new(keys::receipt_key(hash))
    }

    pub fn meta() -> Query<ChainMeta> {
        Query::new(keys::meta_key())
    }

    pub fn params() -> Query<Params> {
        Query::new(keys::params_key())
    }
}
