//! Admission of a transaction from a peer or from this process: the ledger's prechecks against
//! finalized state, then the mempool's own rules. A transaction already in a block used its
//! nonce (a block holds only transactions that paid their fee), so the nonce check refuses it.
//!
//! The API makes the same checks through its own view of the node; both call the ledger's one
//! [`precheck`], so what gossip admits and what a client may submit cannot drift apart.

use crate::{
    mempool::{Mempool, MempoolError},
    store::StateReader,
};
use commonware_codec::EncodeSize as _;
use commonware_runtime::Spawner;
use commonware_storage::Context as StorageContext;
use exo_ledger::{
    Account,
    exec::{Nonce, Precheck, Rules, precheck},
    modules::bank,
};
use exo_types::{SignedTx, TxHash};

/// Why a transaction was not admitted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{0}")]
    Precheck(Precheck),
    #[error("{0}")]
    Mempool(MempoolError),
    #[error("state read failed: {0}")]
    Store(String),
}

impl Refusal {
    /// Whether only a broken or hostile sender could have sent it: a bad signature, another
    /// chain's transaction or one over the size bound. Everything else (a used or far nonce,
    /// funds short of the fee, a full pool) can happen to an honest peer whose view of the
    /// chain is a block apart from ours.
    pub fn is_garbage(&self) -> bool {
        matches!(
            self,
            Self::Precheck(
                Precheck::BadSignature | Precheck::WrongChain | Precheck::Oversize { .. }
            )
        )
    }
}

/// Checks `tx` against finalized state and admits it to `mempool`. `signature_ok` comes from
/// the caller, which may have verified a batch at once.
pub async fn admit<E>(
    state: &StateReader<E>,
    mempool: &Mempool,
    rules: Rules<'_>,
    tx: SignedTx,
    signature_ok: bool,
) -> Result<TxHash, Refusal>
where
    E: StorageContext + Spawner,
{
    // A copy of a pending transaction costs no state read.
    if mempool.contains(&tx.hash()) {
        return Err(Refusal::Mempool(MempoolError::Duplicate));
    }
    let account = read_account(state, &tx).await?;
    precheck(
        &tx,
        signature_ok,
        tx.encode_size(),
        rules,
        &account,
        Nonce::UpTo(mempool.limits().max_nonce_ahead),
    )
    .map_err(Refusal::Precheck)?;
    mempool.insert(tx, &account).map_err(Refusal::Mempool)
}

async fn read_account<E>(state: &StateReader<E>, tx: &SignedTx) -> Result<Account, Refusal>
where
    E: StorageContext + Spawner,
{
    let query = bank::queries::account(&tx.tx.sender);
    let value = state.get(&query.key).await.map_err(Refusal::Store)?;
    Ok(query
        .decode(value.as_deref())
        .map_err(|fault| Refusal::Store(fault.to_string()))?
        .unwrap_or_default())
}
