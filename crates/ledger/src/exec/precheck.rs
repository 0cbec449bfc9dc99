//! The checks a transaction passes before its fee is charged: signature, chain, size, nonce,
//! fee, funds for the fee. One function, called by the block runner, the mempool's admission
//! and the API's, so that what a node admits and what a block executes cannot drift apart.

use super::Precheck;
use crate::modules::bank::Account;
use exo_types::{Amount, MAX_TX_BYTES, SignedTx};

/// How far ahead of the account's next nonce a transaction may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nonce {
    /// In a block: exactly the next one.
    Next,
    /// At admission: the next one or up to this many after it, to wait in the mempool.
    UpTo(u64),
}

/// What the prechecks need to know of the chain.
#[derive(Clone, Copy, Debug)]
pub struct Rules<'a> {
    pub chain_id: &'a str,
    pub min_fee: Amount,
}

/// Checks `tx` against `sender` (the sender's account as the checker knows it). `signature_ok`
/// comes from the caller, which may have verified a whole batch at once.
pub fn precheck(
    tx: &SignedTx,
    signature_ok: bool,
    encoded_len: usize,
    rules: Rules<'_>,
    sender: &Account,
    nonce: Nonce,
) -> Result<(), Precheck> {
    let t = &tx.tx;
    if !signature_ok {
        return Err(Precheck::BadSignature);
    }
    if t.chain_id != rules.chain_id {
        return Err(Precheck::WrongChain);
    }
    if encoded_len > MAX_TX_BYTES {
        return Err(Precheck::Oversize {
            size: u32::try_from(encoded_len).unwrap_or(u32::MAX),
            max: MAX_TX_BYTES as u32,
        });
    }
    if t.nonce < sender.nonce {
        return Err(Precheck::ReplayedNonce {
            expected: sender.nonce,
            got: t.nonce,
        });
    }
    let ahead = match nonce {
        Nonce::Next => 0,
        Nonce::UpTo(n) => n,
    };
    if t.nonce - sender.nonce > ahead {
        return Err(Precheck::GappedNonce {
            expected: sender.nonce,
            got: t.nonce,
        });
    }
    if t.fee < rules.min_fee {
        return Err(Precheck::FeeTooLow {
            min: rules.min_fee,
            got: t.fee,
        });
    }
    if sender.balance < t.fee {
        return Err(Precheck::InsufficientFunds {
            needed: t.fee,
            available: sender.balance,
        });
    }
    Ok(())
}
