//! Limits on what one client can ask of the API, and the per-client token bucket.

use std::{
    collections::BTreeMap,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::Instant,
};

/// Bounds on requests. Every field has a finite default; none is unlimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiLimits {
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Sustained requests per second per client IP (0 turns rate limiting off, for tests and
    /// benchmarks only).
    pub rate_per_sec: u32,
    /// Requests a client may make at once before the sustained rate applies.
    pub rate_burst: u32,
    /// Client IPs tracked by the rate limiter; beyond that, new clients share one bucket.
    pub max_tracked_clients: usize,
    /// Open `GET /v1/events` streams.
    pub max_event_streams: usize,
    /// Longest wait for the node's state or block store.
    pub node_timeout_ms: u64,
    /// How far past the account's next nonce a submitted transaction may reach. The mempool
    /// holds a bounded queue per sender; a nonce beyond it could never be included.
    pub max_nonce_ahead: u64,
    /// Largest blob `PUT /v1/blobs` stores, in bytes (the bound of that route's body).
    pub max_blob_bytes: u64,
    /// Most bytes the blob store holds in all; past it, uploads are refused with 507.
    pub max_blob_store_bytes: u64,
    /// Most items of one page of a list (`?limit=`).
    pub max_page_items: u64,
}

impl Default for ApiLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: 2 * exo_types::MAX_TX_BYTES + 1024,
            rate_per_sec: 200,
            rate_burst: 400,
            max_tracked_clients: 10_000,
            max_event_streams: 256,
            node_timeout_ms: 5_000,
            max_nonce_ahead: exo_chain::mempool::MAX_NONCE_AHEAD,
            max_blob_bytes: 64 * 1024 * 1024,
            max_blob_store_bytes: 4 * 1024 * 1024 * 1024,
            max_page_items: 1_000,
        }
    }
}

/// Thousandths of a request, so that the bucket refills smoothly in integers.
const MILLI: u64 = 1_000;

#[derive(Clone, Copy, Debug)]
struct Bucket {
    milli_tokens: u64,
    refilled: Instant,
}

/// A token bucket per client IP. Requests without a known peer address (an in-process
/// service, tests) share one bucket.
#[derive(Clone, Debug)]
pub struct RateLimiter {
    limits: ApiLimits,
    buckets: Arc<Mutex<BTreeMap<Option<IpAddr>, Bucket>>>,
}

impl RateLimiter {
    pub fn new(limits: ApiLimits) -> Self {
        Self {
            limits,
            buckets: Arc::default(),
        }
    }

    fn capacity(&self) -> u64 {
        u64::from(self.limits.rate_burst.max(1)) * MILLI
    }

    fn refill(&self, bucket: &mut Bucket, now: Instant) {
        let elapsed_us =
            u64::try_from(now.duration_since(bucket.refilled).as_micros()).unwrap_or(u64::MAX);
        // rate_per_sec requests per second is rate_per_sec milli-requests per millisecond.
        let added = elapsed_us.saturating_mul(u64::from(self.limits.rate_per_sec)) / MILLI;
        if added > 0 {
            bucket.milli_tokens = bucket
                .milli_tokens
                .saturating_add(added)
                .min(self.capacity());
            bucket.refilled = now;
        }
    }

    /// Takes one request from `client`'s bucket, or says how many seconds until one is free.
    pub fn check(&self, client: Option<IpAddr>) -> Result<(), u64> {
        self.check_at(client, Instant::now())
    }

    fn check_at(&self, client: Option<IpAddr>, now: Instant) -> Result<(), u64> {
        if self.limits.rate_per_sec == 0 {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let mut key = client;
        if !buckets.contains_key(&key) && buckets.len() >= self.limits.max_tracked_clients {
            // Forget clients whose buckets are full again: they would start full anyway.
            let capacity = self.capacity();
            buckets.retain(|_, bucket| {
                self.refill(bucket, now);
                bucket.milli_tokens < capacity
            });
            if buckets.len() >= self.limits.max_tracked_clients {
                key = None;
            }
        }
        let capacity = self.capacity();
        let bucket = buckets.entry(key).or_insert(Bucket {
            milli_tokens: capacity,
            refilled: now,
        });
        self.refill(bucket, now);
        if bucket.milli_tokens >= MILLI {
            bucket.milli_tokens -= MILLI;
            Ok(())
        } else {
            let missing = MILLI - bucket.milli_tokens;
            let rate = u64::from(self.limits.rate_per_sec);
            Err(missing.div_ceil(rate).div_ceil(MILLI).max(1))
        }
    }

    /// Client IPs currently tracked.
    pub fn tracked(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limiter(rate: u32, burst: u32, clients: usize) -> RateLimiter {
        RateLimiter::new(ApiLimits {
            rate_per_sec: rate,
            rate_burst: burst,
            max_tracked_clients: clients,
            ..ApiLimits::default()
        })
    }

    #[test]
    fn burst_then_sustained_rate() {
        let limiter = limiter(10, 3, 8);
        let t0 = Instant::now();
        let ip = Some(IpAddr::from([127, 0, 0, 1]));
        for _ in 0..3 {
            assert_eq!(limiter.check_at(ip, t0), Ok(()));
        }
        assert_eq!(limiter.check_at(ip, t0), Err(1));
        // Ten per second: one more after 100 ms, not before.
        assert!(
            limiter
                .check_at(ip, t0 + Duration::from_millis(99))
                .is_err()
        );
        assert_eq!(
            limiter.check_at(ip, t0 + Duration::from_millis(100)),
            Ok(())
        );
        // Another client has its own bucket.
        assert_eq!(
            limiter.check_at(Some(IpAddr::from([10, 0, 0, 1])), t0),
            Ok(())
        );
    }

    #[test]
    fn tracked_clients_are_bounded() {
        let limiter = limiter(1, 1, 2);
        let t0 = Instant::now();
        for i in 0..50u8 {
            let _ = limiter.check_at(Some(IpAddr::from([10, 0, 0, i])), t0);
        }
        assert!(limiter.tracked() <= 3);
        // Once the buckets refill, the idle clients are forgotten and new ones tracked.
        let later = t0 + Duration::from_secs(5);
        assert_eq!(
            limiter.check_at(Some(IpAddr::from([10, 0, 1, 1])), later),
            Ok(())
        );
        assert!(limiter.tracked() <= 3);
    }

    #[test]
    fn zero_rate_disables_limiting() {
        let limiter = limiter(0, 1, 1);
        for _ in 0..100 {
            assert_eq!(limiter.check(None), Ok(()));
        }
    }
}
