//! Limits on what one client can ask of the API, and the per-client token bucket.

use std::{
    collections::BTreeMap,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// Bounds on requests. Every field has a finite default; none is unlimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiLimits {
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Sustained unsigned requests per second per client address (an IPv6 /64 counts as one);
    /// 0 turns all rate limiting off, for tests and benchmarks only.
    pub rate_per_sec: u32,
    /// Requests a client may make at once before the sustained rate applies.
    pub rate_burst: u32,
    /// Sustained signed requests (transactions, outputs registrations) per second per signing
    /// key, and their burst: a budget apart from the address's, so that workers and
    /// requesters behind one address do not share one.
    pub signed_rate_per_sec: u32,
    pub signed_rate_burst: u32,
    /// Open event streams per client address.
    pub max_event_streams_per_ip: usize,
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
    /// Requests handled at once; past it, requests are refused with 429 `busy` at once rather
    /// than queued. Event streams and blob bodies being sent do not count once their handler
    /// answered.
    pub max_concurrent_requests: usize,
    /// Longest a handler may take to answer (408 `request_timeout` after it).
    pub request_timeout_ms: u64,
    /// Longest a blob upload may take in all (the body included).
    pub upload_timeout_ms: u64,
    /// Longest wait for the next piece of a request body.
    pub body_idle_timeout_ms: u64,
    /// Longest wait for a request's headers on an open connection.
    pub header_timeout_ms: u64,
    /// Open connections in all, and from one address (an IPv6 /64 counts as one).
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// Blobs pulled from peers at once (each may hold up to `max_blob_bytes` in memory).
    pub max_peer_pulls: usize,
    /// Least balance of an account whose signed blob uploads the node stores.
    pub min_uploader_balance: exo_types::Amount,
    /// Most bytes of blobs one account's uploads may hold on the node.
    pub max_account_blob_bytes: u64,
    /// Age before an owned blob nothing references may be collected: the time a requester has
    /// between uploading inputs and submitting their job.
    pub blob_grace_secs: u64,
    /// How long the outputs of a job that ended stay on the node.
    pub outputs_retention_secs: u64,
}

impl Default for ApiLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: 2 * exo_types::MAX_TX_BYTES + 1024,
            rate_per_sec: 200,
            rate_burst: 400,
            signed_rate_per_sec: 200,
            signed_rate_burst: 400,
            max_event_streams_per_ip: 8,
            max_tracked_clients: 10_000,
            max_event_streams: 256,
            node_timeout_ms: 5_000,
            max_nonce_ahead: exo_chain::mempool::MAX_NONCE_AHEAD,
            max_blob_bytes: 64 * 1024 * 1024,
            max_blob_store_bytes: 4 * 1024 * 1024 * 1024,
            max_page_items: 1_000,
            max_concurrent_requests: 256,
            request_timeout_ms: 30_000,
            // 64 MiB at 256 KiB/s.
            upload_timeout_ms: 256_000,
            body_idle_timeout_ms: 10_000,
            header_timeout_ms: 10_000,
            max_connections: 1_024,
            max_connections_per_ip: 64,
            max_peer_pulls: 2,
            min_uploader_balance: exo_types::Amount::from_exo(1),
            max_account_blob_bytes: 1024 * 1024 * 1024,
            blob_grace_secs: 3_600,
            outputs_retention_secs: 7 * 24 * 3_600,
        }
    }
}

/// The address a client is counted by: itself for IPv4, its /64 for IPv6 (one host usually has
/// a whole /64, so counting single addresses would give it billions of budgets).
pub fn client_prefix(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(
                v6.to_bits() & !((1u128 << 64) - 1),
            )),
        },
    }
}

/// Thousandths of a request, so that the bucket refills smoothly in integers.
const MILLI: u64 = 1_000;
/// Least time between two sweeps of the idle buckets, so that a flood of new clients does not
/// make every request walk the whole table.
const SWEEP_GAP: Duration = Duration::from_secs(1);

/// Who a request is counted against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Client {
    /// No known peer address (an in-process service, tests), or past the tracked clients: one
    /// shared budget.
    Shared,
    /// An unsigned request, by its address ([`client_prefix`]).
    Address(IpAddr),
    /// A request whose signature the API verified, by its signer's public key: workers and
    /// requesters behind one address each have their own budget.
    Signer([u8; 32]),
}

impl Client {
    /// The unsigned budget of a peer address, if known.
    pub fn address(ip: Option<IpAddr>) -> Self {
        ip.map_or(Self::Shared, |ip| Self::Address(client_prefix(ip)))
    }

    /// The budget of a verified signer.
    pub fn signer(key: &exo_types::Address) -> Self {
        Self::Signer(crate::wire::address_bytes(key))
    }
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    milli_tokens: u64,
    refilled: Instant,
}

#[derive(Debug, Default)]
struct Buckets {
    by_client: BTreeMap<Client, Bucket>,
    swept: Option<Instant>,
}

/// A token bucket per client: per address for unsigned requests, per key for signed ones,
/// with separate rates ([`ApiLimits::rate_per_sec`], [`ApiLimits::signed_rate_per_sec`]).
#[derive(Clone, Debug)]
pub struct RateLimiter {
    limits: ApiLimits,
    buckets: Arc<Mutex<Buckets>>,
}

impl RateLimiter {
    pub fn new(limits: ApiLimits) -> Self {
        Self {
            limits,
            buckets: Arc::default(),
        }
    }

    /// Requests per second and burst of `client`'s budget.
    fn budget(&self, client: &Client) -> (u64, u64) {
        let (rate, burst) = match client {
            Client::Signer(_) => (
                self.limits.signed_rate_per_sec,
                self.limits.signed_rate_burst,
            ),
            _ => (self.limits.rate_per_sec, self.limits.rate_burst),
        };
        (u64::from(rate.max(1)), u64::from(burst.max(1)))
    }

    fn refill(&self, client: &Client, bucket: &mut Bucket, now: Instant) {
        let (rate, burst) = self.budget(client);
        let elapsed_us =
            u64::try_from(now.duration_since(bucket.refilled).as_micros()).unwrap_or(u64::MAX);
        // `rate` requests per second is `rate` milli-requests per millisecond.
        let added = elapsed_us.saturating_mul(rate) / MILLI;
        if added > 0 {
            bucket.milli_tokens = bucket.milli_tokens.saturating_add(added).min(burst * MILLI);
            bucket.refilled = now;
        }
    }

    /// Takes `cost` requests (at least one, at most the burst) from `client`'s bucket, or
    /// says how many seconds until they are there.
    pub fn check(&self, client: Client, cost: u32) -> Result<(), u64> {
        self.take_at(client, cost, true, Instant::now())
    }

    /// Whether `client` could make a request now, without taking it.
    pub fn peek(&self, client: Client) -> Result<(), u64> {
        self.take_at(client, 1, false, Instant::now())
    }

    fn take_at(&self, client: Client, cost: u32, take: bool, now: Instant) -> Result<(), u64> {
        if self.limits.rate_per_sec == 0 {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let mut key = client;
        if !buckets.by_client.contains_key(&key)
            && buckets.by_client.len() >= self.limits.max_tracked_clients
        {
            // Forget clients whose buckets are full again (they would start full anyway), at
            // most once per sweep gap.
            if buckets
                .swept
                .is_none_or(|at| now.duration_since(at) >= SWEEP_GAP)
            {
                buckets.swept = Some(now);
                buckets.by_client.retain(|client, bucket| {
                    self.refill(client, bucket, now);
                    bucket.milli_tokens < self.budget(client).1 * MILLI
                });
            }
            if buckets.by_client.len() >= self.limits.max_tracked_clients {
                key = Client::Shared;
            }
        }
        let (rate, burst) = self.budget(&key);
        let bucket = buckets.by_client.entry(key).or_insert(Bucket {
            milli_tokens: burst * MILLI,
            refilled: now,
        });
        self.refill(&key, bucket, now);
        let want = u64::from(cost.max(1)).min(burst) * MILLI;
        if bucket.milli_tokens >= want {
            if take {
                bucket.milli_tokens -= want;
            }
            Ok(())
        } else {
            let missing = want - bucket.milli_tokens;
            // missing / rate milli-seconds, rounded up to whole seconds.
            Err(missing.div_ceil(rate).div_ceil(MILLI).max(1))
        }
    }

    /// Clients currently tracked.
    pub fn tracked(&self) -> usize {
        self.buckets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .by_client
            .len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::Duration;

    impl RateLimiter {
        fn check_at(&self, ip: Option<IpAddr>, now: Instant) -> Result<(), u64> {
            self.take_at(Client::address(ip), 1, true, now)
        }
    }

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
    fn an_ipv6_host_counts_once_per_64() {
        let limiter = limiter(1, 2, 100);
        let t0 = Instant::now();
        let host = |last: u16| Some(IpAddr::from([0x2001, 0xdb8, 0, 1, 0, 0, 0, last]));
        assert_eq!(limiter.check_at(host(1), t0), Ok(()));
        assert_eq!(limiter.check_at(host(2), t0), Ok(()));
        // A third address of the same /64 shares the bucket.
        assert!(limiter.check_at(host(3), t0).is_err());
        // Another /64 does not.
        let other = Some(IpAddr::from([0x2001, 0xdb8, 0, 2, 0, 0, 0, 1]));
        assert_eq!(limiter.check_at(other, t0), Ok(()));
        assert_eq!(
            client_prefix(IpAddr::from([0, 0, 0, 0, 0, 0xffff, 0x7f00, 1])),
            IpAddr::from([127, 0, 0, 1])
        );
    }

    #[test]
    fn zero_rate_disables_limiting() {
        let limiter = limiter(0, 1, 1);
        for _ in 0..100 {
            assert_eq!(limiter.check(Client::Shared, 1), Ok(()));
        }
    }

    /// M6: signed requests are counted per signing key, apart from the address's budget for
    /// unsigned ones; an expensive request costs more than one token.
    #[test]
    fn signed_requests_have_a_budget_per_key_apart_from_the_address() {
        let limiter = RateLimiter::new(ApiLimits {
            rate_per_sec: 1,
            rate_burst: 2,
            signed_rate_per_sec: 1,
            signed_rate_burst: 3,
            ..ApiLimits::default()
        });
        let t0 = Instant::now();
        let ip = Client::address(Some(IpAddr::from([10, 0, 0, 1])));
        let (alice, bob) = (Client::Signer([1; 32]), Client::Signer([2; 32]));
        // The address spends its budget on reads.
        assert_eq!(limiter.take_at(ip, 2, true, t0), Ok(()));
        assert!(limiter.take_at(ip, 1, true, t0).is_err());
        assert!(limiter.take_at(ip, 1, false, t0).is_err());
        // Each key behind it still has its own.
        for key in [alice, bob] {
            for _ in 0..3 {
                assert_eq!(limiter.take_at(key, 1, true, t0), Ok(()));
            }
            assert!(limiter.take_at(key, 1, true, t0).is_err());
        }
        // A cost over the burst is capped at the burst, so it can still be paid.
        let later = t0 + Duration::from_secs(10);
        assert_eq!(limiter.take_at(ip, 50, true, later), Ok(()));
        // A peek takes nothing.
        let much_later = later + Duration::from_secs(10);
        for _ in 0..5 {
            assert_eq!(limiter.take_at(ip, 1, false, much_later), Ok(()));
        }
        assert_eq!(limiter.take_at(ip, 2, true, much_later), Ok(()));
    }
}
