//! A token bucket, for what untrusted peers can make the supervisor do or say: log lines a
//! worker sends, lines the supervisor logs about a worker's requests.

use std::time::Instant;

/// `rate` tokens a second, at most `burst` saved up.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
    /// Takes refused since the last one allowed.
    suppressed: u64,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: u32, burst: u32, now: Instant) -> Self {
        Self {
            rate: f64::from(rate),
            burst: f64::from(burst),
            tokens: f64::from(burst),
            last: now,
            suppressed: 0,
        }
    }

    /// Takes one token if there is one. `Some(n)`: allowed, `n` takes were refused since the
    /// last allowed one (report them with this one); `None`: refused (counted).
    pub fn take(&mut self, now: Instant) -> Option<u64> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn burst_then_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10, 5, t0);
        for _ in 0..5 {
            assert_eq!(b.take(t0), Some(0));
        }
        assert_eq!(b.take(t0), None);
        assert_eq!(b.take(t0), None);
        // 100 ms later: one token back, and the two refused are reported with it.
        assert_eq!(b.take(t0 + Duration::from_millis(100)), Some(2));
        assert_eq!(b.take(t0 + Duration::from_millis(100)), None);
        // Never more than the burst saved up.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..5 {
            assert!(b.take(later).is_some());
        }
        assert_eq!(b.take(later), None);
    }
}
