//! The bank: every token is in an account's balance or in a named pot, and only this module
//! moves, mints or burns them.
//!
//! Other modules hold value by locking it into a pot ([`Pot`]: a job's escrow, a provider's
//! bond, a stake bond, the epoch's rewards, the insurance pool, the treasury, and NFT escrow
//! for a later module) and pay out of it with explicit amounts. After genesis the only
//! minting is the block reward, minted into the rewards pot ([`mint_into`]). Every operation uses checked arithmetic and returns a [`Fault`] instead of
//! saturating. At the end of every block [`check_conservation`] proves that what the block
//! wrote to balances and pots moved by exactly what it minted minus what it burnt; by induction
//! from genesis, `sum(balances) + sum(pots) == supply` holds after every block.
//!
//! This module must never hold a rule of another module: it knows amounts, not jobs.

mod keys;
mod records;

pub use keys::{Table, account_key, funding_key, pot_key, supply_key};
pub use records::{Account, Funding, Pot, PotBalance, Supply};

use crate::state::{
    Fault, Halt, Missing, Namespace, StateCache, decode, keys::in_table, load, store,
};
use exo_types::{Address, Amount};

/// Why the bank refused to move tokens. Codes are frozen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Moving nothing is refused: it would only cost a fee.
    ZeroAmount,
    InsufficientFunds {
        needed: Amount,
        available: Amount,
    },
}

/// An account; absent accounts read as empty.
pub fn account(cache: &StateCache, address: &Address) -> Result<Account, Halt> {
    Ok(load(cache, &account_key(address))?.unwrap_or_default())
}

pub fn balance(cache: &StateCache, address: &Address) -> Result<Amount, Halt> {
    Ok(account(cache, address)?.balance)
}

fn put_account(cache: &mut StateCache, address: &Address, account: &Account) -> Result<(), Halt> {
    Ok(store(cache, account_key(address), account)?)
}

/// Uses the sender's nonce: the block runner calls this once per transaction that paid.
pub fn use_nonce(cache: &mut StateCache, address: &Address) -> Result<(), Halt> {
    let mut a = account(cache, address)?;
    a.nonce = a.nonce.checked_add(1).ok_or(Fault::Overflow("nonce"))?;
    put_account(cache, address, &a)
}

/// What a pot holds; absent pots hold nothing.
pub fn pot(cache: &StateCache, pot: Pot) -> Result<Amount, Halt> {
    Ok(load::<PotBalance>(cache, &pot_key(pot))?.map_or(Amount::ZERO, |p| p.0))
}

fn put_pot(cache: &mut StateCache, pot: Pot, amount: Amount) -> Result<(), Halt> {
    if amount == Amount::ZERO {
        cache.put(pot_key(pot), None);
        Ok(())
    } else {
        Ok(store(cache, pot_key(pot), &PotBalance(amount))?)
    }
}

fn credit(cache: &mut StateCache, to: &Address, amount: Amount) -> Result<(), Halt> {
    let mut a = account(cache, to)?;
    a.balance = a
        .balance
        .checked_add(amount)
        .ok_or(Fault::Overflow("balance"))?;
    put_account(cache, to, &a)
}

/// Takes `amount` from `from`'s balance, or says why not.
fn debit(
    cache: &mut StateCache,
    from: &Address,
    amount: Amount,
) -> Result<Result<(), Refusal>, Halt> {
    let mut a = account(cache, from)?;
    let Some(left) = a.balance.checked_sub(amount) else {
        return Ok(Err(Refusal::InsufficientFunds {
            needed: amount,
            available: a.balance,
        }));
    };
    a.balance = left;
    put_account(cache, from, &a)?;
    Ok(Ok(()))
}

/// Moves `amount` between two balances.
pub fn transfer(
    cache: &mut StateCache,
    from: &Address,
    to: &Address,
    amount: Amount,
) -> Result<Result<(), Refusal>, Halt> {
    if amount == Amount::ZERO {
        return Ok(Err(Refusal::ZeroAmount));
    }
    if let Err(refusal) = debit(cache, from, amount)? {
        return Ok(Err(refusal));
    }
    credit(cache, to, amount)?;
    Ok(Ok(()))
}

/// A transfer between accounts: moves `amount` like [`transfer`], and records `from` as the
/// funder of `to` if nobody funded `to` by transfer before ([`Funding`]). One record per
/// account, written once: the table grows only with the accounts themselves.
pub fn fund(
    cache: &mut StateCache,
    from: &Address,
    to: &Address,
    amount: Amount,
    now_secs: u64,
) -> Result<Result<(), Refusal>, Halt> {
    if let Err(refusal) = transfer(cache, from, to, amount)? {
        return Ok(Err(refusal));
    }
    if from != to && funding(cache, to)?.is_none() {
        let record = Funding {
            funder: from.clone(),
            at_secs: now_secs,
        };
        store(cache, funding_key(to), &record)?;
    }
    Ok(Ok(()))
}

/// Who first funded `address` by transfer, if anyone did.
pub fn funding(cache: &StateCache, address: &Address) -> Result<Option<Funding>, Halt> {
    load(cache, &funding_key(address))
}

/// Moves `amount` from `from`'s balance into `pot`.
pub fn lock(
    cache: &mut StateCache,
    from: &Address,
    into: Pot,
    amount: Amount,
) -> Result<Result<(), Refusal>, Halt> {
    if let Err(refusal) = debit(cache, from, amount)? {
        return Ok(Err(refusal));
    }
    add_to_pot(cache, into, amount)?;
    Ok(Ok(()))
}

fn add_to_pot(cache: &mut StateCache, into: Pot, amount: Amount) -> Result<(), Halt> {
    let held = pot(cache, into)?
        .checked_add(amount)
        .ok_or(Fault::Overflow("pot"))?;
    put_pot(cache, into, held)
}

fn take_from_pot(cache: &mut StateCache, from: Pot, amount: Amount) -> Result<(), Halt> {
    let held = pot(cache, from)?;
    let left = held.checked_sub(amount).ok_or_else(|| {
        Fault::Invariant(format!(
            "pot {from} holds {held} but {amount} was taken from it"
        ))
    })?;
    put_pot(cache, from, left)
}

/// Pays `amount` out of `pot` to `to`. A pot holds what its module locked, so taking more is a
/// fault, never a refusal.
pub fn release(
    cache: &mut StateCache,
    from: Pot,
    to: &Address,
    amount: Amount,
) -> Result<(), Halt> {
    if amount == Amount::ZERO {
        return Ok(());
    }
    take_from_pot(cache, from, amount)?;
    credit(cache, to, amount)
}

/// Moves `amount` from one pot to another (a slash into the insurance pool, a reward's
/// remainder into the treasury). Taking more than `from` holds is a fault.
pub fn move_between(
    cache: &mut StateCache,
    from: Pot,
    to: Pot,
    amount: Amount,
) -> Result<(), Halt> {
    if amount == Amount::ZERO {
        return Ok(());
    }
    take_from_pot(cache, from, amount)?;
    add_to_pot(cache, to, amount)
}

/// Burns `amount` out of `pot`: the tokens leave the supply.
pub fn burn(cache: &mut StateCache, from: Pot, amount: Amount) -> Result<(), Halt> {
    if amount == Amount::ZERO {
        return Ok(());
    }
    take_from_pot(cache, from, amount)?;
    let mut supply = supply(cache)?;
    supply.total = supply
        .total
        .checked_sub(amount)
        .ok_or(Fault::Overflow("supply"))?;
    supply.burnt = supply
        .burnt
        .checked_add(amount)
        .ok_or(Fault::Overflow("burnt"))?;
    Ok(store(cache, supply_key(), &supply)?)
}

/// Creates `amount` new tokens in `to`'s balance.
pub fn mint(cache: &mut StateCache, to: &Address, amount: Amount) -> Result<(), Halt> {
    grow_supply(cache, amount)?;
    credit(cache, to, amount)
}

fn grow_supply(cache: &mut StateCache, amount: Amount) -> Result<(), Halt> {
    let mut supply = supply(cache)?;
    supply.total = supply
        .total
        .checked_add(amount)
        .ok_or(Fault::Overflow("supply"))?;
    Ok(store(cache, supply_key(), &supply)?)
}

/// Creates `amount` new tokens in `into`: the block reward, the only minting after genesis.
pub fn mint_into(cache: &mut StateCache, into: Pot, amount: Amount) -> Result<(), Halt> {
    if amount == Amount::ZERO {
        return Ok(());
    }
    grow_supply(cache, amount)?;
    add_to_pot(cache, into, amount)
}

/// Checks that a pot holds exactly what its module's own record says (the paired assertion
/// of every pot: the market's job accounts against the escrow, its provider record against
/// the bond). A difference means the state was changed behind the bank's back.
pub fn expect_pot(cache: &StateCache, pot: Pot, expected: Amount) -> Result<(), Halt> {
    let held = self::pot(cache, pot)?;
    if held != expected {
        return Err(Fault::Invariant(format!(
            "pot {pot} holds {held} but its module's record says {expected}"
        ))
        .into());
    }
    Ok(())
}

/// The supply record.
pub fn supply(cache: &StateCache) -> Result<Supply, Halt> {
    Ok(load(cache, &supply_key())?.unwrap_or_default())
}

/// Writes the genesis balances and the supply they add up to.
pub fn genesis(cache: &mut StateCache, accounts: &[(Address, Amount)]) -> Result<(), Halt> {
    let mut total = Amount::ZERO;
    for (address, balance) in accounts {
        total = total
            .checked_add(*balance)
            .ok_or(Fault::Overflow("genesis supply"))?;
        put_account(
            cache,
            address,
            &Account {
                balance: *balance,
                nonce: 0,
            },
        )?;
    }
    Ok(store(
        cache,
        supply_key(),
        &Supply {
            total,
            burnt: Amount::ZERO,
        },
    )?)
}

/// The end-of-block check: over every balance and pot the block wrote (whoever wrote it), the
/// sum of `after - before` equals the change of the supply.
///
/// Keys written without having been read first are loaded (through [`Halt::Missing`]) so that
/// even a write that went around the bank is measured against the stored value.
pub fn check_conservation(cache: &StateCache) -> Result<(), Halt> {
    let mut written: Vec<_> = cache
        .writes()
        .filter(|(k, _)| {
            in_table(k, Namespace::Bank, Table::Account as u8)
                || in_table(k, Namespace::Bank, Table::Pot as u8)
                || in_table(k, Namespace::Bank, Table::Supply as u8)
        })
        .map(|(k, v)| (*k, v.clone()))
        .collect();
    // In key order, so that the keys it asks for come in the same order on every node.
    written.sort_unstable_by_key(|(k, _)| *k);
    let unread: Vec<_> = written
        .iter()
        .filter(|(k, _)| cache.before(k).is_none())
        .map(|(k, _)| *k)
        .collect();
    if !unread.is_empty() {
        return Err(Missing(unread).into());
    }
    // Increases and decreases are summed apart: a balance may use the whole of u128.
    let (mut held_in, mut held_out, mut supply_in, mut supply_out) = (0u128, 0u128, 0u128, 0u128);
    for (key, after) in &written {
        let before = cache.before(key).flatten();
        let value = |bytes: Option<&[u8]>| -> Result<u128, Fault> {
            let Some(bytes) = bytes else { return Ok(0) };
            Ok(if in_table(key, Namespace::Bank, Table::Account as u8) {
                decode::<Account>(bytes)?.balance.0
            } else if in_table(key, Namespace::Bank, Table::Pot as u8) {
                decode::<PotBalance>(bytes)?.0.0
            } else {
                decode::<Supply>(bytes)?.total.0
            })
        };
        let (after, before) = (value(after.as_deref())?, value(before)?);
        let is_supply = in_table(key, Namespace::Bank, Table::Supply as u8);
        let (up, down) = if is_supply {
            (&mut supply_in, &mut supply_out)
        } else {
            (&mut held_in, &mut held_out)
        };
        let sum = if after >= before { up } else { down };
        *sum = sum
            .checked_add(after.abs_diff(before))
            .ok_or(Fault::Overflow("conservation check"))?;
    }
    // held_in - held_out == supply_in - supply_out, without leaving u128.
    let left = held_in.checked_add(supply_out);
    let right = held_out.checked_add(supply_in);
    if left.is_none() || left != right {
        return Err(Fault::Conservation {
            held_in,
            held_out,
            supply_in,
            supply_out,
        }
        .into());
    }
    Ok(())
}

/// What the bank answers to readers of finalized state.
pub mod queries {
    use super::{Account, Pot, PotBalance, Supply, account_key, pot_key, supply_key};
    use crate::state::Query;
    use exo_types::Address;

    pub fn account(address: &Address) -> Query<Account> {
        Query::new(account_key(address))
    }

    pub fn pot(pot: Pot) -> Query<PotBalance> {
        Query::new(pot_key(pot))
    }

    pub fn supply() -> Query<Supply> {
        Query::new(supply_key())
    }
}

#[cfg(test)]
mod tests;
