//! Admission limits per caller: a request rate (token bucket) and a number
//! of open watch streams. The caller is the authenticated identity, or the
//! remote IP address when authentication is off.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use crate::AccessError;
use clap::Args;

/// Limits both services share.
#[derive(Debug, Clone, Copy, Args)]
pub struct LimitArgs {
    /// Requests per second each caller may make (0: no limit). Bursts of up
    /// to --rate-burst are allowed.
    #[arg(long, env = "VELTRIX_RATE_LIMIT", default_value_t = 0.0)]
    pub rate_limit: f64,
    /// Largest burst of requests above the rate.
    #[arg(long, env = "VELTRIX_RATE_BURST", default_value_t = 100)]
    pub rate_burst: u32,
    /// Open watch streams each caller may hold (query service).
    #[arg(long, env = "VELTRIX_MAX_WATCHERS_PER_CALLER", default_value_t = 10_000)]
    pub max_watchers_per_caller: usize,
}

impl Default for LimitArgs {
    fn default() -> Self {
        Self { rate_limit: 0.0, rate_burst: 100, max_watchers_per_caller: 10_000 }
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The limits in force and what each caller has used.
pub struct Admission {
    limits: LimitArgs,
    buckets: Mutex<HashMap<String, Bucket>>,
    watchers: Arc<Mutex<HashMap<String, usize>>>,
}

/// Held by an open watch stream; frees its place when dropped.
pub struct WatcherPermit {
    caller: String,
    watchers: Arc<Mutex<HashMap<String, usize>>>,
}

impl Drop for WatcherPermit {
    fn drop(&mut self) {
        let mut watchers = self.watchers.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = watchers.get_mut(&self.caller) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                watchers.remove(&self.caller);
            }
        }
    }
}

/// Who a limit applies to.
pub fn caller_key(identity: Option<&str>, remote: Option<IpAddr>) -> String {
    match (identity, remote) {
        (Some(identity), _) => format!("id:{identity}"),
        (None, Some(ip)) => format!("ip:{ip}"),
        (None, None) => "anonymous".to_owned(),
    }
}

impl Admission {
    pub fn new(limits: LimitArgs) -> Self {
        Self { limits, buckets: Mutex::default(), watchers: Arc::default() }
    }

    /// Whether requests are rate-limited at all (callers skip the lookup
    /// when not).
    pub fn limits_rate(&self) -> bool {
        self.limits.rate_limit > 0.0
    }

    /// Takes one request from the caller's bucket, or says how long to wait.
    pub fn admit(&self, caller: &str) -> Result<(), AccessError> {
        let rate = self.limits.rate_limit;
        if rate <= 0.0 {
            return Ok(());
        }
        let burst = f64::from(self.limits.rate_burst.max(1));
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() > 100_000 {
            // Forget full buckets (idle callers) so the map stays bounded.
            buckets.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < burst);
        }
        let bucket = buckets.entry(caller.to_owned()).or_insert(Bucket { tokens: burst, at: now });
        bucket.tokens = (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * rate).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let retry_in = Duration::try_from_secs_f64((1.0 - bucket.tokens) / rate).unwrap_or(Duration::from_secs(1));
        Err(AccessError::RateLimited { rate, retry_in })
    }

    /// A place for one more watch stream, or the limit that refuses it.
    pub fn watcher(&self, caller: &str) -> Result<WatcherPermit, AccessError> {
        let mut watchers = self.watchers.lock().unwrap_or_else(PoisonError::into_inner);
        let open = watchers.entry(caller.to_owned()).or_insert(0);
        if *open >= self.limits.max_watchers_per_caller {
            return Err(AccessError::TooManyWatchers { limit: self.limits.max_watchers_per_caller });
        }
        *open += 1;
        Ok(WatcherPermit { caller: caller.to_owned(), watchers: self.watchers.clone() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_refill_and_refuse_with_a_hint() {
        let a = Admission::new(LimitArgs { rate_limit: 10.0, rate_burst: 2, max_watchers_per_caller: 1 });
        assert!(a.admit("x").is_ok());
        assert!(a.admit("x").is_ok());
        let refused = a.admit("x").unwrap_err();
        assert!(matches!(refused, AccessError::RateLimited { .. }), "{refused:?}");
        assert!(a.admit("y").is_ok(), "callers have their own buckets");
        std::thread::sleep(Duration::from_millis(120));
        assert!(a.admit("x").is_ok(), "refilled");
    }

    #[test]
    fn watchers_are_counted_per_caller_and_freed() {
        let a = Admission::new(LimitArgs { rate_limit: 0.0, rate_burst: 1, max_watchers_per_caller: 1 });
        let permit = a.watcher("x");
        assert!(permit.is_ok());
        assert_eq!(a.watcher("x").err(), Some(AccessError::TooManyWatchers { limit: 1 }));
        drop(permit);
        assert!(a.watcher("x").is_ok());
    }
}
