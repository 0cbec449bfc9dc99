//! Ledger unit and property tests: every rejection, fee flow and supply conservation.

use commonware_cryptography::Signer;
use exo_ledger::{
    Account, BlockEnv, Genesis, GenesisAccount, Ledger, MemoryBacking, Params, Rejection,
    StateCache, TxStatus, account_key, decode_account, decode_meta,
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

/// A chain in memory: executes blocks of transactions the way the chain crate does.
struct Harness {
    genesis: Genesis,
    store: MemoryBacking,
    height: u64,
}

impl Harness {
    fn new(funded: &[(u64, u128)]) -> Self {
        Self {
            genesis: genesis(funded),
            store: MemoryBacking::default(),
            height: 0,
        }
    }

    fn block(&mut self, proposer: u64, txs: &[(SignedTx, bool)]) -> Vec<TxStatus> {
        self.height += 1;
        let env = BlockEnv {
            height: self.height,
            proposer: addr(proposer),
            seed: [self.height as u8; 32],
        };
        let mut cache = StateCache::new();
        let mut ledger = self
            .store
            .resolve(&mut cache, |c| Ledger::begin(c, &self.genesis, env.clone()));
        let mut statuses = Vec::new();
        for (i, (tx, sig_ok)) in txs.iter().enumerate() {
            let len = commonware_codec::EncodeSize::encode_size(tx);
            let receipt = self.store.resolve(&mut cache, |c| {
                let mut attempt = ledger.clone();
                let receipt = attempt.apply_tx(c, i as u32, tx, *sig_ok, len)?;
                Ok((attempt, receipt))
            });
            ledger = receipt.0;
            if let Some(receipt) = receipt.1 {
                statuses.push(receipt.status);
            }
        }
        let ledger = self.store.resolve(&mut cache, |c| {
            let mut attempt = ledger.clone();
            attempt.end_block(c)?;
            Ok(attempt)
        });
        ledger.finish(&mut cache);
        self.store.apply(cache.into_writes());
        statuses
    }

    fn account(&self, i: u64) -> Account {
        self.store
            .entries
            .get(&account_key(&addr(i)))
            .and_then(|b| decode_account(b))
            .unwrap_or_default()
    }

    fn total_balance(&self) -> u128 {
        self.store
            .entries
            .iter()
            .filter(|(k, _)| k[0] == 1)
            .map(|(_, v)| decode_account(v).expect("account").balance.0)
            .sum()
    }

    fn supply(&self) -> u128 {
        let meta = self
            .store
            .entries
            .get(&exo_ledger::chain_meta_key())
            .and_then(|b| decode_meta(b))
            .expect("meta");
        meta.supply.0
    }
}

fn rejected(status: &TxStatus) -> &Rejection {
    match status {
        TxStatus::Rejected(r) => r,
        TxStatus::Ok => panic!("expected a rejection, got Ok"),
    }
}

#[test]
fn transfer_moves_funds_and_pays_fee_to_proposer() {
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
    assert_eq!(h.account(9).balance, Amount(1_000));
    assert_eq!(h.total_balance(), h.supply());
}

#[test]
fn transfer_to_the_proposer_keeps_both_credits() {
    let mut h = Harness::new(&[(1, 1_000_000)]);
    h.block(2, &[(transfer(1, 0, 2, 5_000, 1_000), true)]);
    assert_eq!(h.account(2).balance, Amount(6_000));
    assert_eq!(h.total_balance(), 1_000_000);
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
    assert_eq!(rejected(&statuses[0]), &Rejection::BadSignature);
    assert!(matches!(
        rejected(&statuses[1]),
        Rejection::WrongChain { .. }
    ));
    assert_eq!(
        rejected(&statuses[2]),
        &Rejection::GappedNonce {
            expected: 0,
            got: 5
        }
    );
    assert!(matches!(
        rejected(&statuses[3]),
        Rejection::FeeTooLow { .. }
    ));
    assert!(matches!(
        rejected(&statuses[4]),
        Rejection::InsufficientFunds { .. }
    ));
    // From here on the fee is paid and the nonce used even though the action fails.
    assert_eq!(rejected(&statuses[5]), &Rejection::ZeroAmount);
    assert!(matches!(
        rejected(&statuses[6]),
        Rejection::InsufficientFunds { .. }
    ));
    // Supply is conserved and fits in u128, so even a near-maximal balance takes the credit.
    assert_eq!(statuses[7], TxStatus::Ok);
    assert_eq!(
        rejected(&statuses[8]),
        &Rejection::ReplayedNonce {
            expected: 3,
            got: 0
        }
    );
    assert_eq!(
        h.account(1),
        Account {
            balance: Amount(2_000),
            nonce: 3
        }
    );
    assert_eq!(h.account(9).balance, Amount(3_000));
    assert_eq!(h.total_balance(), h.supply());
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

#[test]
fn rejection_messages_are_sentences() {
    let r = Rejection::InsufficientFunds {
        needed: Amount(5),
        available: Amount(3),
    };
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
        let supply = h.total_balance();
        prop_assert_eq!(h.supply(), supply);
        for (proposer, txs) in blocks {
            h.block(proposer, &txs);
            prop_assert_eq!(h.total_balance(), supply);
            prop_assert_eq!(h.supply(), supply);
        }
    }
}
