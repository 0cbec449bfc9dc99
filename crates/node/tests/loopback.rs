//! Four validator processes' worth of nodes on 127.0.0.1, each on its own tokio runtime.

use exo_node::NodeConfig;
use exo_node::devnet::{DevnetOptions, init};
use std::time::{Duration, Instant};

#[test]
fn four_nodes_finalize_over_loopback() {
    let dir = std::env::temp_dir().join(format!("exo-loopback-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let layout = init(&DevnetOptions {
        validators: 4,
        data_dir: dir.clone(),
        api_port: 28_080,
        p2p_port: 29_000,
        extra_accounts: Vec::new(),
    })
    .expect("devnet layout");
    let mut threads = Vec::new();
    for path in layout.configs.clone() {
        threads.push(std::thread::spawn(move || {
            let config = NodeConfig::load(&path).expect("config");
            exo_node::node::run(config, |validator, _info| async move {
                let start = Instant::now();
                while validator.events.status().finalized_height < 5 {
                    if start.elapsed() > Duration::from_secs(60) {
                        anyhow::bail!("no finality over loopback");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                // Stay up a little so that slower peers also reach the height.
                tokio::time::sleep(Duration::from_secs(2)).await;
                Ok(())
            })
        }));
    }
    for t in threads {
        t.join().expect("thread").expect("node");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
