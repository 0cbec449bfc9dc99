//! Block execution: genesis, transactions, evidence.

use crate::{
    Account, ChainMeta, Evidence, Genesis, Missing, Params, Receipt, Rejection, StateCache,
    TxStatus,
    genesis::decode_params,
    keys::{Tag, meta_key, params_key},
};
use commonware_codec::{DecodeExt, Encode};
use exo_types::{Address, Amount, Digest, MAX_TX_BYTES, SignedTx};

/// What the chain tells the ledger about the block being executed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockEnv {
    pub height: u64,
    /// The leader that proposed the block; it collects the block's fees.
    pub proposer: Address,
    /// Unpredictable before the block: the parent block's digest. Draws hidden audits.
    pub seed: [u8; 32],
}

/// Executes one block. Created by [`Ledger::begin`], finished by [`Ledger::finish`].
///
/// Each method either completes or returns [`Missing`] without having changed `self`; the
/// caller rolls the cache back to its checkpoint, loads the key and calls again.
#[derive(Clone, Debug)]
pub struct Ledger {
    pub(crate) chain_id: String,
    pub(crate) params: Params,
    pub(crate) meta: ChainMeta,
    pub(crate) env: BlockEnv,
}

fn decode<T: DecodeExt<()>>(bytes: &[u8], what: &'static str) -> T {
    // State is written only by this crate, so a record that does not decode means the store is
    // corrupt: a fault, not a rejection. Stop loudly rather than diverge silently.
    match T::decode(bytes.to_vec()) {
        Ok(value) => value,
        Err(err) => panic!("corrupt {what} record in state: {err}"),
    }
}

impl Ledger {
    /// Starts block `env.height`. On the first block, writes the genesis state.
    pub fn begin(
        cache: &mut StateCache,
        genesis: &Genesis,
        env: BlockEnv,
    ) -> Result<Self, Missing> {
        let meta = cache
            .get(&meta_key())?
            .map(|b| decode::<ChainMeta>(b, "meta"));
        let (meta, params) = match meta {
            Some(meta) => {
                let params = match cache.get(&params_key())? {
                    Some(bytes) => match decode_params(bytes) {
                        Ok(p) => p,
                        Err(err) => panic!("corrupt params record in state: {err}"),
                    },
                    None => panic!("state has chain metadata but no parameters"),
                };
                (meta, params)
            }
            None => Self::write_genesis(cache, genesis)?,
        };
        Ok(Self {
            chain_id: genesis.chain_id.clone(),
            params,
            meta,
            env,
        })
    }

    fn write_genesis(
        cache: &mut StateCache,
        genesis: &Genesis,
    ) -> Result<(ChainMeta, Params), Missing> {
        // A genesis that does not validate never reaches a running node: the node refuses to
        // start. Here it would be a programming error.
        let accounts = genesis
            .accounts()
            .unwrap_or_else(|e| panic!("invalid genesis: {e}"));
        let validators = genesis
            .validators()
            .unwrap_or_else(|e| panic!("invalid genesis: {e}"));
        let mut supply = Amount::ZERO;
        for (address, balance) in accounts {
            supply = supply
                .checked_add(balance)
                .unwrap_or_else(|| panic!("genesis supply overflows"));
            let account = Account { balance, nonce: 0 };
            cache.put(
                Tag::Account.key_of(&address),
                Some(account.encode().to_vec()),
            );
        }
        for validator in validators {
            cache.put(Tag::Validator.key_of(&validator), Some(vec![1]));
        }
        cache.put(params_key(), Some(genesis.params.encode().to_vec()));
        let meta = ChainMeta {
            supply,
            ..ChainMeta::default()
        };
        Ok((meta, genesis.params.clone()))
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    pub fn meta(&self) -> &ChainMeta {
        &self.meta
    }

    pub(crate) fn account(cache: &StateCache, address: &Address) -> Result<Account, Missing> {
        Ok(cache
            .get(&Tag::Account.key_of(address))?
            .map(|b| decode::<Account>(b, "account"))
            .unwrap_or_default())
    }

    fn put_account(cache: &mut StateCache, address: &Address, account: &Account) {
        cache.put(
            Tag::Account.key_of(address),
            Some(account.encode().to_vec()),
        );
    }

    /// Executes transaction `index` of the block and records its receipt.
    ///
    /// `signature_ok` comes from the chain's batch verification. `encoded_len` is the size of
    /// the transaction as it travelled. Returns `None`, and changes nothing, for a transaction
    /// that already has a receipt: executing it again would overwrite the record of what it did.
    pub fn apply_tx(
        &mut self,
        cache: &mut StateCache,
        index: u32,
        tx: &SignedTx,
        signature_ok: bool,
        encoded_len: usize,
    ) -> Result<Option<Receipt>, Missing> {
        let hash = tx.hash();
        if cache.get(&Tag::Receipt.key_of(&hash))?.is_some() {
            return Ok(None);
        }
        let (status, fee_paid) = self.execute(cache, tx, signature_ok, encoded_len)?;
        let receipt = Receipt {
            height: self.env.height,
            index,
            status,
            fee_paid,
        };
        cache.put(Tag::Receipt.key_of(&hash), Some(receipt.encode().to_vec()));
        self.meta.tx_count = self.meta.tx_count.saturating_add(1);
        Ok(Some(receipt))
    }

    /// Checks and executes a transaction. Rejections before the fee is paid leave the state
    /// untouched; rejections of the action itself still charge the fee and use the nonce, so
    /// that spam is never free.
    fn execute(
        &mut self,
        cache: &mut StateCache,
        signed: &SignedTx,
        signature_ok: bool,
        encoded_len: usize,
    ) -> Result<(TxStatus, Amount), Missing> {
        let tx = &signed.tx;
        let reject = |r| Ok((TxStatus::Rejected(r), Amount::ZERO));
        if !signature_ok {
            return reject(Rejection::BadSignature);
        }
        if tx.chain_id != self.chain_id {
            return reject(Rejection::WrongChain {
                expected: self.chain_id.clone(),
            });
        }
        if encoded_len > MAX_TX_BYTES {
            return reject(Rejection::Oversize {
                size: u32::try_from(encoded_len).unwrap_or(u32::MAX),
                max: MAX_TX_BYTES as u32,
            });
        }
        let mut sender = Self::account(cache, &tx.sender)?;
        if tx.nonce < sender.nonce {
            return reject(Rejection::ReplayedNonce {
                expected: sender.nonce,
                got: tx.nonce,
            });
        }
        if tx.nonce > sender.nonce {
            return reject(Rejection::GappedNonce {
                expected: sender.nonce,
                got: tx.nonce,
            });
        }
        if tx.fee < self.params.min_fee {
            return reject(Rejection::FeeTooLow {
                min: self.params.min_fee,
                got: tx.fee,
            });
        }
        let Some(balance_after_fee) = sender.balance.checked_sub(tx.fee) else {
            return reject(Rejection::InsufficientFunds {
                needed: tx.fee,
                available: sender.balance,
            });
        };
        // The fee is paid and the nonce used from here on; a refused action is rolled back
        // to this point and keeps only those.
        sender.balance = balance_after_fee;
        sender.nonce = sender.nonce.saturating_add(1);
        Self::put_account(cache, &tx.sender, &sender);
        // A refused action leaves no trace: neither in state nor in the block's counters
        // (a settlement inside a refused batch may already have burnt a slash).
        let checkpoint = cache.checkpoint();
        let meta = self.meta.clone();
        let status = match self.apply_action(cache, &tx.sender, &tx.action)? {
            Ok(()) => TxStatus::Ok,
            Err(rejection) => {
                cache.rollback(checkpoint);
                self.meta = meta;
                TxStatus::Rejected(rejection)
            }
        };
        Self::credit(cache, &self.env.proposer, tx.fee)?;
        Ok((status, tx.fee))
    }

    /// Moves `amount` from `from` to `to`, or says why not.
    pub(crate) fn transfer(
        cache: &mut StateCache,
        from: &Address,
        to: &Address,
        amount: Amount,
    ) -> Result<Result<(), Rejection>, Missing> {
        if amount == Amount::ZERO {
            return Ok(Err(Rejection::ZeroAmount));
        }
        let available = Self::account(cache, from)?.balance;
        if available < amount {
            return Ok(Err(Rejection::InsufficientFunds {
                needed: amount,
                available,
            }));
        }
        Self::debit(cache, from, amount)?;
        Self::credit(cache, to, amount)?;
        Ok(Ok(()))
    }

    /// Adds to an account. Supply is conserved and fits in u128, so no balance can overflow
    /// here; a failure would be a broken invariant.
    pub(crate) fn credit(
        cache: &mut StateCache,
        address: &Address,
        amount: Amount,
    ) -> Result<(), Missing> {
        let mut account = Self::account(cache, address)?;
        account.balance = account
            .balance
            .checked_add(amount)
            .unwrap_or_else(|| panic!("balance overflow despite conserved supply"));
        Self::put_account(cache, address, &account);
        Ok(())
    }

    /// Takes from an account whose balance was checked beforehand.
    pub(crate) fn debit(
        cache: &mut StateCache,
        address: &Address,
        amount: Amount,
    ) -> Result<(), Missing> {
        let mut account = Self::account(cache, address)?;
        account.balance = account
            .balance
            .checked_sub(amount)
            .unwrap_or_else(|| panic!("debit of an unchecked balance"));
        Self::put_account(cache, address, &account);
        Ok(())
    }

    /// Records a verified consensus fault once; returns whether it was new.
    pub fn record_evidence(
        &mut self,
        cache: &mut StateCache,
        evidence: &Evidence,
    ) -> Result<bool, Missing> {
        let bytes = evidence.encode();
        let key = Tag::Evidence.key_of(&exo_types::hash_bytes(&bytes));
        if cache.get(&key)?.is_some() {
            return Ok(false);
        }
        let mut record = bytes.to_vec();
        record.extend_from_slice(&self.env.height.to_be_bytes());
        cache.put(key, Some(record));
        self.meta.evidence_count = self.meta.evidence_count.saturating_add(1);
        Ok(true)
    }

    /// Ends the block: writes the chain metadata.
    pub fn finish(mut self, cache: &mut StateCache) -> ChainMeta {
        self.meta.height = self.env.height;
        cache.put(meta_key(), Some(self.meta.encode().to_vec()));
        self.meta
    }
}

/// Reads an account from a finalized state value.
pub fn decode_account(bytes: &[u8]) -> Option<Account> {
    Account::decode(bytes.to_vec()).ok()
}

/// Reads a receipt from a finalized state value.
pub fn decode_receipt(bytes: &[u8]) -> Option<Receipt> {
    Receipt::decode(bytes.to_vec()).ok()
}

/// Reads the chain metadata from a finalized state value.
pub fn decode_meta(bytes: &[u8]) -> Option<ChainMeta> {
    ChainMeta::decode(bytes.to_vec()).ok()
}

/// The state key of an account.
pub fn account_key(address: &Address) -> crate::Key {
    Tag::Account.key_of(address)
}

/// The state key of a receipt.
pub fn receipt_key(hash: &Digest) -> crate::Key {
    Tag::Receipt.key_of(hash)
}

/// The state key of the chain metadata.
pub fn chain_meta_key() -> crate::Key {
    meta_key()
}
