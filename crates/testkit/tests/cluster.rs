//! Four validators under the deterministic runtime and the simulated network.

use commonware_cryptography::Signer as _;
use commonware_runtime::{Runner as _, deterministic};
use exo_testkit::{Cluster, account_key, faucet_key, transfer};
use exo_types::Amount;
use std::time::Duration;

fn runner(seed: u64) -> deterministic::Runner {
    deterministic::Runner::new(
        deterministic::Config::default()
            .with_seed(seed)
            .with_timeout(Some(Duration::from_secs(600))),
    )
}

#[test]
fn four_validators_finalize_transfers_with_one_state_root() {
    runner(1).start(|context| async move {
        let cluster = Cluster::start(context, 4, 0).await;
        let faucet = faucet_key();
        let alice = account_key(1).public_key();
        for nonce in 0..20 {
            let tx = transfer(&faucet, nonce, &alice, Amount::from_exo(1));
            cluster
                .validator((nonce % 4) as usize)
                .submit(tx)
                .expect("admitted");
        }
        cluster.wait_for_height(10, Duration::from_secs(60)).await;
        for i in 0..4 {
            assert_eq!(cluster.balance(i, &alice).await, Amount::from_exo(20));
        }
        cluster.wait_for_height(12, Duration::from_secs(60)).await;
        let roots: Vec<_> = (0..4).map(|i| cluster.status(i)).collect();
        println!("{roots:?}");
    });
}
