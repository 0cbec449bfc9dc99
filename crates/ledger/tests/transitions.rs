//! Ledger unit and property tests: every rejection, fee flow and supply conservation.

use commonware_cryptography::Signer;
use exo_ledger::{
    Account, Genesis, GenesisAccount, MemoryChain, Params, Rejection, Signatures, TxStatus,
    exec::Precheck,
    modules::bank,
    state::{Namespace, decode},
};
use exo_types::{Action, Address, Amount, PrivateKey, SignedTx, UnsignedTx, address_to_hex};
use proptest::prelude::*;

const CHAIN: &str = "exo-test";

fn key(i: u64) -> PrivateKey {
    PrivateKey::from_seed(i)
}

fn addr(i: u64) -> Address {
    key(i).public_key()
}

fn genesis(funded: &[(u64, u128)]) -> Genesis {
    Genesis {
        chain_id: CHAIN.into(),
        params: Params::default(),
        accounts: funded
            .iter()
            .map(|(i, b)| GenesisAccount {
                address: address_to_hex(&addr(*i)),
                balance: Amount(*b),
            })
            .collect(),
        validators: vec![address_to_hex(&addr(100))],
    }
}

fn transfer(from: u64, nonce: u64, to: u64, amount: u128, fee: u128) -> SignedTx {
    UnsignedTx {
        chain_id: CHAIN.into(),
        sender: addr(from),
        nonce,
        fee: Amount(fee),
        action: Action::Transfer {
            to: addr(to),
            amount: Amount(amount),
        },
    }
    .sign(&key(from))
}

/// A chain in memory, with the transactions' signature verdicts chosen by the test.
struct Harness {
    chain: MemoryChain,
}

impl Harness {
    fn new(funded: &[(u64, u128)]) -> Self {
        Self {
            chain: MemoryChain::new(genesis(funded)),
        }
    }

    fn block(&mut self, proposer: u64, txs: &[(SignedTx, bool)]) -> Vec<TxStatus> {
        let verdicts = Signatures::Checked(txs.iter().map(|(_, ok)| *ok).collect());
        let txs: Vec<SignedTx> = txs.iter().map(|(tx, _)| tx.clone()).collect();
        let outcome = self
            .chain
            .next(&addr(proposer), &txs, verdicts)
            .expect("no fault");
        outcome
            .receipts
            .into_iter()
            .flatten()
            .map(|r| r.status)
            .collect()
    }

    fn account(&self, i: u64) -> Account {
        self.chain.account(&addr(i))
    }

    /// Every balance and every pot (the fees wait in the epoch's rewards pot).
    fn total_held(&self) -> u128 {
        let in_bank =
            |k: &[u8], table: bank::Table| k[0] == Namespace::Bank as u8 && k[1] == table as u8;
        self.chain
            .store
            .entries
            .iter()
            .map(|(k, v)| {
                if in_bank(k, bank::Table::Account) {
                    decode::<Account>(v).expect("account").balance.0
                } else if in_bank(k, bank::Table::Pot) {
                    decode::<bank::PotBalance>(v).expect("pot").0.0
                } else {
                    0
                }
            })
            .sum()
    }

    fn rewards(&self) -> Amount {
        self.chain
            .get::<bank::PotBalance>(&bank::pot_key(bank::Pot::Rewards))
            .map_or(Amount::ZERO, |p| p.0)
    }

    fn supply(&self) -> u128 {
        self.chain
            .get::<bank::Supply>(&bank::supply_key())
            .expect("supply")
            .total
            .0
    }
}

fn rejected(status: &TxStatus) -> &Rejection {
    match status {
        TxStatus::Rejected(r) => r,
        TxStatus::Ok => panic!("expected a rejection, got Ok"),
    }
}

#[test]
fn transfer_moves_funds_and_puts_the_fee_in_the_epochs_rewards() {
    let mut h = Harness::new(&[(1, 1_000_000), (2, 0)]);
    let statuses = h.block(9, &[(transfer(1, 0, 2, 5_000, 1_000), true)]);
    assert_eq!(statuses, vec![TxStatus::Ok]);
    assert_eq!(
        h.account(1),
        Account {
            balance: Amount(994_000),
            nonce: 1
        }
    );
    assert_eq!(h.account(2).balance, Amount(5_000));
    assert_eq!(
        h.account(9).balance,
        Amount::ZERO,
        "the proposer collects no fee"
    );
    assert_eq!(h.rewards(), Amount(1_000));
    assert_eq!(h.total_held(), h.supply());
}

#[test]
fn transfer_to_the_proposer_credits_it_the_amount_and_not_the_fee() {
    let mut h = Harness::new(&[(1, 1_000_000)]);
    h.block(2, &[(transfer(1, 0, 2, 5_000, 1_000), true)]);
    assert_eq!(h.account(2).balance, Amount(5_000));
    assert_eq!(h.rewards(), Amount(1_000));
    assert_eq!(h.total_held(), 1_000_000);
}

#[test]
fn every_rejection_has_its_reason() {
    let mut h = Harness::new(&[(1, 10_000), (3, u128::MAX - 20_000)]);
    let mut wrong_chain = transfer(1, 0, 2, 1, 1_000).tx;
    wrong_chain.chain_id = "other".into();
    let wrong_chain = wrong_chain.sign(&key(1));
    let statuses = h.block(
        9,
        &[
            (transfer(1, 0, 2, 1, 1_000), false),
            (wrong_chain, true),
            (transfer(1, 5, 2, 1, 1_000), true),
            (transfer(1, 0, 2, 1, 10), true),
            (transfer(1, 0, 2, 1, 20_000), true),
            (transfer(1, 0, 2, 0, 1_000), true),
            (transfer(1, 1, 2, 1_000_000, 1_000), true),
            (transfer(1, 2, 3, 5_000, 1_000), true),
            (transfer(1, 0, 2, 1, 1_001), true),
        ],
    );
    assert_eq!(
        rejected(&statuses[0]),
        &Rejection::Exec(Precheck::BadSignature)
    );
    assert!(matches!(
        rejected(&statuses[1]),
        Rejection::Exec(Precheck::WrongChain)
    ));
    assert_eq!(
        rejected(&statuses[2]),
        &Rejection::Exec(Precheck::GappedNonce {
            expected: 0,
            got: 5
        })
    );
    assert!(matches!(
        rejected(&statuses[3]),
        Rejection::Exec(Precheck::FeeTooLow { .. })
    ));
    assert!(matches!(
        rejected(&statuses[4]),
        Rejection::Exec(Precheck::InsufficientFunds { .. })
    ));
    // From here on the fee is paid and the nonce used even though the action fails.
    assert_eq!(
        rejected(&statuses[5]),
        &Rejection::Bank(bank::Refusal::ZeroAmount)
    );
    assert!(matches!(
        rejected(&statuses[6]),
        Rejection::Bank(bank::Refusal::InsufficientFunds { .. })
    ));
    // Supply is conserved and fits in u128, so even a near-maximal balance takes the credit.
    assert_eq!(statuses[7], TxStatus::Ok);
    assert_eq!(
        rejected(&statuses[8]),
        &Rejection::Exec(Precheck::ReplayedNonce {
            expected: 3,
            got: 0
        })
    );
    assert_eq!(
        h.account(1),
        Account {
            balance: Amount(2_000),
            nonce: 3
        }
    );
    assert_eq!(h.rewards(), Amount(3_000));
    assert_eq!(h.total_held(), h.supply());
}

#[test]
fn a_transaction_executes_once() {
    let mut h = Harness::new(&[(1, 1_000_000)]);
    let tx = transfer(1, 0, 2, 5, 1_000);
    let statuses = h.block(9, &[(tx.clone(), true), (tx.clone(), true)]);
    assert_eq!(statuses, vec![TxStatus::Ok]);
    assert!(h.block(9, &[(tx, true)]).is_empty());
    assert_eq!(h.account(1).nonce, 1);
}

/// Audit M3: a byzantine proposer puts someone's pending transactions into its block out of
/// order (nonce 1 before nonce 0) and before they are funded. They pay nothing, so the block is
/// reported as holding unpaid transactions (the chain refuses it), and nothing of them is kept:
/// once their time comes, the same transactions execute.
#[test]
fn a_transaction_put_in_early_by_a_proposer_still_executes_when_its_time_comes() {
    let mut h = Harness::new(&[(1, 10_000)]);
    let early = transfer(1, 1, 2, 1, 1_000);
    let unfunded = transfer(2, 0, 1, 1, 1_000);
    let forged = {
        let mut tx = transfer(1, 0, 3, 5_000, 1_000);
        tx.signature = transfer(1, 0, 3, 1, 1_000).signature;
        tx
    };
    let byzantine = h
        .chain
        .next(
            &addr(9),
            &[early.clone(), unfunded.clone(), forged],
            Signatures::Verify,
        )
        .expect("no fault");
    assert_eq!(byzantine.unpaid, vec![0, 1, 2]);
    assert_eq!(h.account(1).nonce, 0);
    assert_eq!(
        h.account(9).balance,
        Amount(0),
        "the proposer earned no fee"
    );

    let statuses = h.block(
        9,
        &[
            (transfer(1, 0, 2, 5_000, 1_000), true),
            (early, true),
            (unfunded, true),
        ],
    );
    assert_eq!(statuses, vec![TxStatus::Ok; 3]);
    assert_eq!(h.account(1).nonce, 2);
    assert_eq!(h.account(2).nonce, 1);
    assert_eq!(h.total_held(), h.supply());
}

/// What an honest proposer builds never holds an unpaid transaction.
#[test]
fn a_block_of_paying_transactions_has_nothing_unpaid() {
    let mut h = Harness::new(&[(1, 10_000)]);
    let outcome = h
        .chain
        .next(
            &addr(9),
            &[transfer(1, 0, 2, 5, 1_000), transfer(1, 1, 2, 5, 1_000)],
            Signatures::Verify,
        )
        .expect("no fault");
    assert!(outcome.unpaid.is_empty());
}

#[test]
fn rejection_messages_are_sentences() {
    let r = Rejection::Bank(bank::Refusal::InsufficientFunds {
        needed: Amount(5),
        available: Amount(3),
    });
    assert_eq!(r.to_string(), "insufficient funds: needs 5, has 3");
    assert_eq!(r.code(), "insufficient_funds");
}

#[test]
fn genesis_is_validated() {
    let mut g = genesis(&[(1, 1)]);
    g.validators.clear();
    assert!(g.validate().is_err());
    let mut g = genesis(&[(1, 1), (1, 2)]);
    assert!(g.validate().is_err());
    g.accounts.pop();
    assert!(g.validate().is_ok());
    g.accounts[0].address = "nothex".into();
    assert!(g.validate().is_err());
}

prop_compose! {
    fn arb_tx()(from in 0u64..5, nonce in 0u64..4, to in 0u64..6, amount in 0u128..2_000_000,
                fee in 0u128..3_000, sig_ok in proptest::bool::weighted(0.9)) -> (SignedTx, bool) {
        (transfer(from, nonce, to, amount, fee), sig_ok)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random transaction sequences never change total supply and never panic.
    #[test]
    fn supply_is_conserved(blocks in proptest::collection::vec(
        (0u64..7, proptest::collection::vec(arb_tx(), 0..20)), 1..8)) {
        let mut h = Harness::new(&[(0, 1_000_000), (1, 5_000_000), (2, 100), (3, u128::MAX / 4)]);
        h.block(0, &[]);
        let supply = h.total_held();
        prop_assert_eq!(h.supply(), supply);
        for (proposer, txs) in blocks {
            h.block(proposer, &txs);
            prop_assert_eq!(h.total_held(), supply);
            prop_assert_eq!(h.supply(), supply);
        }
    }
}
