use exo_node::NodeConfig;
use exo_node::devnet::{DevnetOptions, init};
use std::time::Duration;

#[test]
#[ignore]
fn single_node_memory() {
    let dir = std::env::temp_dir().join(format!("exo-single-{}", std::process::id()));
    let layout = init(&DevnetOptions {
        validators: 1,
        data_dir: dir.clone(),
        api_port: 28_180,
        p2p_port: 29_100,
        extra_accounts: Vec::new(),
    })
    .unwrap();
    let config = NodeConfig::load(&layout.configs[0]).unwrap();
    exo_node::node::run(config, |validator, _info| async move {
        for _ in 0..15 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let rss = exo_node::devnet::peak_rss_mib(std::process::id()).unwrap();
            println!(
                "height {} peak rss {rss:.0} MiB",
                validator.events.status().finalized_height
            );
        }
        Ok(())
    })
    .unwrap();
}
