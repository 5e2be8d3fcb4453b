//! A token bucket per client address, in memory, with a bounded number of clients.
//!
//! IPv6 clients are counted per /64 (one host usually holds a whole /64). The limiter
//! takes the instant as an argument (a monotonic `Instant`, not the `--now` clock: it
//! measures elapsed time, records nothing) so tests never sleep.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

#[derive(Debug)]
pub(crate) struct RateLimiter {
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
    /// The burst a client may make at once, and the refill per minute.
    per_minute: f64,
    max_clients: usize,
}

impl RateLimiter {
    pub(crate) fn new(per_minute: u32, max_clients: usize) -> RateLimiter {
        RateLimiter {
            buckets: Mutex::new(HashMap::new()),
            per_minute: f64::from(per_minute.max(1)),
            max_clients: max_clients.max(1),
        }
    }

    /// Takes one request from `client`'s bucket, or says how long until one is free.
    pub(crate) fn check(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        let key = bucket_key(client);
        let per_second = self.per_minute / 60.0;
        // A poisoned lock only means another request panicked mid-update; the counts
        // are still usable.
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !buckets.contains_key(&key) && buckets.len() >= self.max_clients {
            self.make_room(&mut buckets, now);
        }
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: self.per_minute,
            last: now,
        });
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_second).min(self.per_minute);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                ((1.0 - bucket.tokens) / per_second).ceil(),
            ))
        }
    }

    /// Forgets clients whose bucket has refilled (they are as if never seen); if every
    /// client is busy, the one seen longest ago.
    fn make_room(&self, buckets: &mut HashMap<IpAddr, Bucket>, now: Instant) {
        let per_second = self.per_minute / 60.0;
        buckets.retain(|_, b| {
            b.tokens + now.saturating_duration_since(b.last).as_secs_f64() * per_second
                < self.per_minute
        });
        if buckets.len() >= self.max_clients
            && let Some(oldest) = buckets
                .iter()
                .min_by_key(|(_, b)| b.last)
                .map(|(ip, _)| *ip)
        {
            buckets.remove(&oldest);
        }
    }

    #[cfg(test)]
    pub(crate) fn clients(&self) -> usize {
        self.buckets.lock().map(|b| b.len()).unwrap_or(0)
    }
}

/// IPv4 as is (IPv4-mapped IPv6 too); other IPv6 by its /64 prefix.
fn bucket_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
}

/// The address in one `X-Forwarded-For` entry, as proxies write it: `192.0.2.1`,
/// `192.0.2.1:4711`, `2001:db8::1`, `[2001:db8::1]:4711` or `[2001:db8::1]`. `None` for
/// anything else (`unknown`, an obfuscated name, garbage).
pub(crate) fn forwarded_hop(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(socket) = entry.parse::<std::net::SocketAddr>() {
        return Some(socket.ip());
    }
    entry
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|inner| inner.parse::<Ipv6Addr>().ok())
        .map(IpAddr::V6)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_burst_then_refusal_then_refill() {
        let limiter = RateLimiter::new(30, 100);
        let start = Instant::now();
        for _ in 0..30 {
            assert_eq!(limiter.check(ip("192.0.2.1"), start), Ok(()));
        }
        let wait = limiter.check(ip("192.0.2.1"), start).unwrap_err();
        assert_eq!(wait, Duration::from_secs(2));
        // Another client is not affected.
        assert_eq!(limiter.check(ip("192.0.2.2"), start), Ok(()));
        // Two seconds later, one more request is allowed (30 a minute), and only one.
        let later = start + Duration::from_secs(2);
        assert_eq!(limiter.check(ip("192.0.2.1"), later), Ok(()));
        assert!(limiter.check(ip("192.0.2.1"), later).is_err());
        // A minute later, the whole burst is back.
        let much_later = later + Duration::from_secs(60);
        for _ in 0..30 {
            assert_eq!(limiter.check(ip("192.0.2.1"), much_later), Ok(()));
        }
    }

    #[test]
    fn ipv6_counts_per_64() {
        let limiter = RateLimiter::new(2, 100);
        let now = Instant::now();
        assert!(limiter.check(ip("2001:db8:1:2::1"), now).is_ok());
        assert!(limiter.check(ip("2001:db8:1:2:ffff::9"), now).is_ok());
        assert!(limiter.check(ip("2001:db8:1:2::77"), now).is_err());
        assert!(limiter.check(ip("2001:db8:1:3::1"), now).is_ok());
        // IPv4-mapped addresses count as the IPv4 address.
        assert!(limiter.check(ip("198.51.100.7"), now).is_ok());
        assert!(limiter.check(ip("::ffff:198.51.100.7"), now).is_ok());
        assert!(limiter.check(ip("198.51.100.7"), now).is_err());
    }

    #[test]
    fn the_table_stays_bounded() {
        let limiter = RateLimiter::new(30, 50);
        let now = Instant::now();
        for i in 0..1000u32 {
            let addr = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            assert!(
                limiter
                    .check(addr, now + Duration::from_millis(u64::from(i)))
                    .is_ok()
            );
            assert!(limiter.clients() <= 50);
        }
        // A client that used up its bucket is not forgotten to make room; idle ones are.
        let limiter = RateLimiter::new(2, 3);
        limiter.check(ip("192.0.2.1"), now).unwrap();
        limiter.check(ip("192.0.2.2"), now).unwrap();
        let busy_at = now + Duration::from_secs(100);
        limiter.check(ip("192.0.2.3"), busy_at).unwrap();
        limiter.check(ip("192.0.2.3"), busy_at).unwrap();
        limiter
            .check(ip("192.0.2.4"), busy_at + Duration::from_secs(1))
            .unwrap();
        assert_eq!(limiter.clients(), 2);
        assert!(
            limiter
                .check(ip("192.0.2.3"), busy_at + Duration::from_secs(1))
                .is_err()
        );
    }

    #[test]
    fn a_forwarded_entry_is_read_with_or_without_its_port() {
        assert_eq!(forwarded_hop(" 192.0.2.1"), Some(ip("192.0.2.1")));
        assert_eq!(forwarded_hop("192.0.2.1:4711"), Some(ip("192.0.2.1")));
        assert_eq!(forwarded_hop("2001:db8::1"), Some(ip("2001:db8::1")));
        assert_eq!(forwarded_hop("[2001:db8::1]:4711"), Some(ip("2001:db8::1")));
        assert_eq!(forwarded_hop("[2001:db8::1]"), Some(ip("2001:db8::1")));
        for bad in ["unknown", "", "_hidden", "192.0.2.1:port", "[192.0.2.1]"] {
            assert_eq!(forwarded_hop(bad), None, "{bad:?}");
        }
    }
}
