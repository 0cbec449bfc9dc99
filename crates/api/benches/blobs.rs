//! The blob store under a busy market: 256 workers at once each upload a ~100-byte output
//! archive (`put_for`) and register it as a unit's output (`add_output`), the two writes an
//! accepted unit costs the node. Reported per pair. And a node's start: opening a store that
//! holds 1,000 render-sized archives (512 KiB each) in its database. The stores live on the
//! real disk (the target directory), since the costs measured are those of the disk.

use axum::body::Body;
use criterion::{Criterion, criterion_group, criterion_main};
use exo_api::{
    BlobStore,
    blobs::{OutputCandidate, Uploader},
};
use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

/// Uploads in flight at once.
const CONCURRENT: u64 = 256;

/// One upload of a fresh ~100-byte archive and its registration as unit `n`'s output.
async fn upload_and_register(store: &BlobStore, n: u64) {
    let mut archive = vec![0u8; 100];
    archive[..8].copy_from_slice(&n.to_le_bytes());
    let hash = *blake3::hash(&archive).as_bytes();
    let uploader = Uploader {
        owner: Some([(n % CONCURRENT) as u8; 32]),
        quota_bytes: u64::MAX,
    };
    let stored = store
        .put_for(Body::from(archive), 1 << 20, hash, uploader)
        .await
        .expect("upload");
    let candidate = OutputCandidate {
        archive: stored.hash,
        digest: stored.hash,
        size: stored.size,
        replica: Some(0),
    };
    let unit = u32::try_from(n % u64::from(u32::MAX)).expect("unit");
    store
        .add_output(n / u64::from(u32::MAX), unit, candidate, false)
        .await
        .expect("register");
}

fn upload_and_register_concurrently(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let store = BlobStore::open(dir.path(), u64::MAX).expect("store");
    let next = Arc::new(AtomicU64::new(0));
    c.bench_function("blobs/put_for+add_output, 256 at once, per pair", |b| {
        b.iter_custom(|pairs| {
            runtime.block_on(async {
                let start = Instant::now();
                let tasks: Vec<_> = (0..CONCURRENT)
                    .map(|task| {
                        let store = store.clone();
                        let next = next.clone();
                        // The pairs split across the tasks; the first ones take the remainder.
                        let share = pairs / CONCURRENT + u64::from(task < pairs % CONCURRENT);
                        tokio::spawn(async move {
                            for _ in 0..share {
                                let n = next.fetch_add(1, Ordering::Relaxed);
                                upload_and_register(&store, n).await;
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.expect("task");
                }
                start.elapsed()
            })
        });
    });
}

/// Archives in the store a start opens, and the bytes of each.
const STORED: u64 = 1_000;
const STORED_BYTES: usize = 512 * 1024;

fn open_a_full_store(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    {
        let store = BlobStore::open(dir.path(), u64::MAX).expect("store");
        runtime.block_on(async {
            for n in 0..STORED {
                let mut archive = vec![7u8; STORED_BYTES];
                archive[..8].copy_from_slice(&n.to_le_bytes());
                let hash = *blake3::hash(&archive).as_bytes();
                let uploader = Uploader {
                    owner: Some([1; 32]),
                    quota_bytes: u64::MAX,
                };
                store
                    .put_for(Body::from(archive), 1 << 20, hash, uploader)
                    .await
                    .expect("upload");
            }
        });
    }
    let mut group = c.benchmark_group("blobs");
    group.sample_size(10);
    group.bench_function("open, 1,000 archives of 512 KiB in the database", |b| {
        b.iter_with_large_drop(|| {
            let store = BlobStore::open(dir.path(), u64::MAX).expect("reopen");
            assert_eq!(store.used_bytes(), STORED * STORED_BYTES as u64);
            store
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(10));
    targets = upload_and_register_concurrently, open_a_full_store
}
criterion_main!(benches);
