//! When to retry, how long to wait, and how fast to send.
//!
//! The policy is the apiserver audit webhook backend's: exponential backoff
//! from `--audit-initial-backoff`, factor 1.5, ±20 % jitter, capped; a
//! token bucket of `--audit-batch-throttle-qps` with burst
//! `--audit-batch-throttle-burst`. Which answers are worth retrying follows
//! vector's HTTP sinks: 408, 429 and 5xx other than 501.

use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

/// What to do with a batch after the CSE API answered `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    /// Renew the access token, then resend.
    Reauthenticate,
    /// Wait and resend.
    Retry,
    /// Give up on the batch; it will never be accepted as it is.
    Reject,
}

/// Classifies an HTTP status from the CSE API. Only a definite refusal
/// (4xx other than 401, 408 and 429; 501) gives a batch up.
pub fn classify(status: u16) -> Verdict {
    match status {
        200..=299 => Verdict::Delivered,
        401 => Verdict::Reauthenticate,
        408 | 429 => Verdict::Retry,
        400..=499 | 501 => Verdict::Reject,
        // 5xx, and anything unexpected (a redirect, which is not followed
        // so the token never goes elsewhere): keep the batch and retry.
        _ => Verdict::Retry,
    }
}

/// Capped exponential backoff with ±20 % jitter.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

const FACTOR: f64 = 1.5;
const JITTER: f64 = 0.2;

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max,
            next: initial,
        }
    }

    /// The wait before the next attempt; each call grows the next one.
    pub fn next_delay(&mut self, rng: &mut impl Rng) -> Duration {
        let base = self.next.min(self.max);
        self.next = self.next.mul_f64(FACTOR).min(self.max);
        let jitter = rng.random_range(-JITTER..=JITTER);
        base.mul_f64(1.0 + jitter)
    }

    /// Back to the initial delay after a success.
    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

/// A token bucket: `qps` tokens per second, at most `burst` saved up.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    qps: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket. `qps <= 0` means unlimited.
    pub fn new(qps: f64, burst: u32) -> TokenBucket {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            qps,
            burst,
            tokens: burst,
            last: Instant::now(),
        }
    }

    /// Takes a token now, or says how long until one is available.
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        if self.qps <= 0.0 {
            return Ok(());
        }
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.qps).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.qps))
        }
    }

    /// Waits for a token.
    pub async fn take(&mut self) {
        while let Err(wait) = self.try_take(Instant::now()) {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn classifies_like_the_http_sinks() {
        let table = [
            (200, Verdict::Delivered),
            (202, Verdict::Delivered),
            (400, Verdict::Reject),
            (401, Verdict::Reauthenticate),
            (403, Verdict::Reject),
            (404, Verdict::Reject),
            (408, Verdict::Retry),
            (413, Verdict::Reject),
            (429, Verdict::Retry),
            (500, Verdict::Retry),
            (501, Verdict::Reject),
            (502, Verdict::Retry),
            (503, Verdict::Retry),
            (504, Verdict::Retry),
            (302, Verdict::Retry),
            (100, Verdict::Retry),
        ];
        for (status, want) in table {
            assert_eq!(classify(status), want, "{status}");
        }
    }

    #[test]
    fn backoff_grows_by_half_with_bounded_jitter_and_caps() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut b = Backoff::new(Duration::from_secs(30), Duration::from_secs(100));
        let bases = [30.0, 45.0, 67.5, 100.0, 100.0, 100.0];
        for base in bases {
            let d = b.next_delay(&mut rng).as_secs_f64();
            assert!(
                d >= base * 0.8 - 1e-9 && d <= base * 1.2 + 1e-9,
                "{d} vs {base}"
            );
        }
        b.reset();
        let d = b.next_delay(&mut rng).as_secs_f64();
        assert!((24.0..=36.0).contains(&d));
    }

    #[tokio::test(start_paused = true)]
    async fn token_bucket_allows_burst_then_paces() {
        let mut tb = TokenBucket::new(4.0, 4);
        let start = Instant::now();
        for _ in 0..4 {
            assert!(tb.try_take(start).is_ok());
        }
        assert_eq!(tb.try_take(start), Err(Duration::from_millis(250)));
        for _ in 0..4 {
            tb.take().await;
        }
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        let mut unlimited = TokenBucket::new(0.0, 1);
        for _ in 0..1000 {
            assert!(unlimited.try_take(start).is_ok());
        }
    }
}
