use super::*;
use crate::state::{MemoryBacking, Record, StateCache};
use commonware_cryptography::Signer;
use exo_types::PrivateKey;

fn addr(seed: u64) -> Address {
    PrivateKey::from_seed(seed).public_key()
}

/// A cache over a store holding `accounts` and their supply, as genesis writes them.
fn funded(accounts: &[(u64, u128)]) -> StateCache {
    let mut cache = StateCache::new();
    let accounts: Vec<(Address, Amount)> = accounts
        .iter()
        .map(|(seed, b)| (addr(*seed), Amount(*b)))
        .collect();
    genesis(&mut cache, &accounts).expect("genesis");
    let mut store = MemoryBacking::default();
    store.apply(cache.into_writes());
    // A new block: everything the bank reads comes from the store.
    let mut cache = StateCache::new();
    for (key, value) in &store.entries {
        cache.load(*key, Some(value.clone()));
    }
    cache
}

/// Runs `step`, loading any key it asks for as absent (everything present was loaded by
/// [`funded`]), as a block runner would from the store.
fn with<T>(
    cache: &mut StateCache,
    mut step: impl FnMut(&mut StateCache) -> Result<T, Halt>,
) -> Result<T, Fault> {
    loop {
        let checkpoint = cache.checkpoint();
        match step(cache) {
            Ok(value) => return Ok(value),
            Err(Halt::Missing(missing)) => {
                cache.rollback(checkpoint);
                for key in missing.0 {
                    cache.load(key, None);
                }
            }
            Err(Halt::Fault(fault)) => return Err(fault),
        }
    }
}

fn fault<T: std::fmt::Debug>(result: Result<T, Fault>) -> Fault {
    match result {
        Err(fault) => fault,
        other => panic!("expected a fault, got {other:?}"),
    }
}

#[test]
fn moving_locking_paying_burning_and_minting_conserve_the_supply() {
    let mut cache = funded(&[(1, 1_000), (2, 0)]);
    let pot = Pot::JobEscrow(7);
    assert_eq!(
        with(&mut cache, |c| lock(c, &addr(1), pot, Amount(600))).unwrap(),
        Ok(())
    );
    assert_eq!(
        with(&mut cache, |c| transfer(c, &addr(1), &addr(2), Amount(100))).unwrap(),
        Ok(())
    );
    with(&mut cache, |c| release(c, pot, &addr(2), Amount(250))).unwrap();
    with(&mut cache, |c| burn(c, pot, Amount(50))).unwrap();
    with(&mut cache, |c| mint(c, &addr(2), Amount(50))).unwrap();
    with(&mut cache, |c| check_conservation(c)).unwrap();
    assert_eq!(
        with(&mut cache, |c| balance(c, &addr(1))).unwrap(),
        Amount(300)
    );
    assert_eq!(
        with(&mut cache, |c| balance(c, &addr(2))).unwrap(),
        Amount(400)
    );
    assert_eq!(
        with(&mut cache, |c| self::pot(c, pot)).unwrap(),
        Amount(300)
    );
    // Burnt 50, minted 50.
    assert_eq!(
        with(&mut cache, |c| supply(c)).unwrap().total,
        Amount(1_000)
    );
    assert_eq!(with(&mut cache, |c| supply(c)).unwrap().burnt, Amount(50));
}

#[test]
fn refusals_leave_balances_alone() {
    let mut cache = funded(&[(1, 10)]);
    assert_eq!(
        with(&mut cache, |c| transfer(c, &addr(1), &addr(2), Amount(11))).unwrap(),
        Err(Refusal::InsufficientFunds {
            needed: Amount(11),
            available: Amount(10)
        })
    );
    assert_eq!(
        with(&mut cache, |c| transfer(
            c,
            &addr(1),
            &addr(2),
            Amount::ZERO
        ))
        .unwrap(),
        Err(Refusal::ZeroAmount)
    );
    assert_eq!(
        with(&mut cache, |c| lock(c, &addr(1), Pot::Treasury, Amount(11))).unwrap(),
        Err(Refusal::InsufficientFunds {
            needed: Amount(11),
            available: Amount(10)
        })
    );
    assert_eq!(
        with(&mut cache, |c| balance(c, &addr(1))).unwrap(),
        Amount(10)
    );
    with(&mut cache, |c| check_conservation(c)).unwrap();
}

#[test]
fn taking_more_from_a_pot_than_it_holds_is_a_fault() {
    let mut cache = funded(&[(1, 10)]);
    with(&mut cache, |c| lock(c, &addr(1), Pot::Insurance, Amount(5)))
        .unwrap()
        .unwrap();
    let f = fault(with(&mut cache, |c| {
        release(c, Pot::Insurance, &addr(1), Amount(6))
    }));
    assert!(f.to_string().contains("pot insurance holds"), "{f}");
    let f = fault(with(&mut cache, |c| burn(c, Pot::Insurance, Amount(6))));
    assert!(matches!(f, Fault::Invariant(_)), "{f}");
}

#[test]
fn a_balance_at_the_top_of_u128_is_still_counted_exactly() {
    let mut cache = funded(&[(1, u128::MAX - 5), (2, 5)]);
    with(&mut cache, |c| transfer(c, &addr(2), &addr(1), Amount(5)))
        .unwrap()
        .unwrap();
    with(&mut cache, |c| check_conservation(c)).unwrap();
    assert_eq!(
        with(&mut cache, |c| balance(c, &addr(1))).unwrap(),
        Amount(u128::MAX)
    );
}

#[test]
fn a_pot_written_around_the_bank_fails_the_conservation_check() {
    let mut cache = funded(&[(1, 1_000)]);
    let pot = Pot::ProviderBond(3);
    with(&mut cache, |c| lock(c, &addr(1), pot, Amount(100)))
        .unwrap()
        .unwrap();
    with(&mut cache, |c| check_conservation(c)).unwrap();
    // A module that writes a pot itself (a bug, or corruption) adds tokens from nowhere.
    cache.put(pot_key(pot), Some(PotBalance(Amount(150)).to_bytes()));
    let f = fault(with(&mut cache, |c| check_conservation(c)));
    assert_eq!(
        f,
        Fault::Conservation {
            held_in: 150,
            held_out: 100,
            supply_in: 0,
            supply_out: 0
        }
    );
}

#[test]
fn a_write_the_block_never_read_is_loaded_before_it_is_judged() {
    let mut cache = funded(&[(1, 1_000)]);
    // Written blind: the check asks for the stored value instead of guessing it.
    cache.put(
        account_key(&addr(9)),
        Some(
            Account {
                balance: Amount(5),
                nonce: 0,
            }
            .to_bytes(),
        ),
    );
    match check_conservation(&cache) {
        Err(Halt::Missing(missing)) => assert_eq!(missing.0, vec![account_key(&addr(9))]),
        other => panic!("expected the key to be asked for, got {other:?}"),
    }
    cache.load(account_key(&addr(9)), None);
    assert!(matches!(
        fault(with(&mut cache, |c| check_conservation(c))),
        Fault::Conservation { .. }
    ));
}

#[test]
fn a_pot_that_disagrees_with_its_module_is_a_fault() {
    let mut cache = funded(&[(1, 1_000)]);
    let pot = Pot::JobEscrow(1);
    with(&mut cache, |c| lock(c, &addr(1), pot, Amount(100)))
        .unwrap()
        .unwrap();
    with(&mut cache, |c| expect_pot(c, pot, Amount(100))).unwrap();
    let f = fault(with(&mut cache, |c| expect_pot(c, pot, Amount(99))));
    assert!(
        f.to_string()
            .contains("pot job_escrow(1) holds 100 but its module's record says 99"),
        "{f}"
    );
}

#[test]
fn an_account_remembers_only_its_first_funder_and_a_refused_transfer_funds_nobody() {
    let mut cache = funded(&[(1, 1_000), (2, 1_000), (3, 0)]);
    let funder = |cache: &mut StateCache| with(cache, |c| funding(c, &addr(3))).unwrap();
    assert_eq!(funder(&mut cache), None, "genesis funds nobody by transfer");
    // A transfer the sender cannot cover moves nothing and records nothing.
    let refused = with(&mut cache, |c| fund(c, &addr(3), &addr(1), Amount(5), 10)).unwrap();
    assert!(refused.is_err());
    assert_eq!(with(&mut cache, |c| funding(c, &addr(1))).unwrap(), None);
    for (from, at_secs) in [(1, 100), (2, 200), (1, 300)] {
        let sent = with(&mut cache, |c| {
            fund(c, &addr(from), &addr(3), Amount(10), at_secs)
        });
        assert_eq!(sent.unwrap(), Ok(()));
    }
    assert_eq!(
        funder(&mut cache),
        Some(Funding {
            funder: addr(1),
            at_secs: 100
        })
    );
    // Sending to oneself funds nothing.
    let own = with(&mut cache, |c| fund(c, &addr(2), &addr(2), Amount(1), 400)).unwrap();
    assert_eq!(own, Ok(()));
    assert_eq!(with(&mut cache, |c| funding(c, &addr(2))).unwrap(), None);
    with(&mut cache, |c| check_conservation(c)).unwrap();
}
